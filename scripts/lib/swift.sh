#!/usr/bin/env bash
# Installs Swift 6 for the iOS package's tests: Debian trixie's swiftlang in a trixie chroot under
# .tools/swift-trixie (Debian 12 has no Swift; trixie's needs trixie's glibc). Once: later runs
# find it in place. Sourced; defines `in_swift_chroot DIR COMMAND...`, which runs COMMAND inside
# the chroot with the repository bind-mounted at /yilian and DIR as the working directory.
set -euo pipefail
YILIAN_ROOT="${YILIAN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SWIFT_ROOT="$YILIAN_ROOT/.tools/swift-trixie"

as_root() { if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi; }

if [ ! -x "$SWIFT_ROOT/usr/bin/swift" ]; then
  echo "swift: installing swiftlang 6 in a Debian trixie chroot at .tools/swift-trixie (once, ~3.4 GB)" >&2
  if ! command -v debootstrap >/dev/null 2>&1; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap
  fi
  mkdir -p "$YILIAN_ROOT/.tools"
  if [ ! -x "$SWIFT_ROOT/usr/bin/apt-get" ]; then
    rm -rf "$SWIFT_ROOT"
    as_root debootstrap --variant=minbase trixie "$SWIFT_ROOT" http://deb.debian.org/debian >/dev/null
  fi
  as_root chroot "$SWIFT_ROOT" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends swiftlang libc6-dev libstdc++-14-dev >/dev/null'
fi

# Runs "$@" in the chroot, in /yilian/$1; /proc and the repository are mounted for the call only.
in_swift_chroot() {
  local dir="$1"; shift
  mkdir -p "$SWIFT_ROOT/yilian"
  mountpoint -q "$SWIFT_ROOT/proc" || as_root mount -t proc proc "$SWIFT_ROOT/proc"
  mountpoint -q "$SWIFT_ROOT/yilian" || as_root mount --bind "$YILIAN_ROOT" "$SWIFT_ROOT/yilian"
  local status=0
  as_root chroot "$SWIFT_ROOT" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin \
    YILIAN_RELAY="${YILIAN_RELAY:-}" YILIAN_FINGERPRINT="${YILIAN_FINGERPRINT:-}" \
    YILIAN_CODE_A="${YILIAN_CODE_A:-}" YILIAN_CODE_B="${YILIAN_CODE_B:-}" YILIAN_CODE_C="${YILIAN_CODE_C:-}" \
    LD_LIBRARY_PATH="/yilian/target/debug" \
    /bin/sh -c "cd /yilian/$dir && $*" || status=$?
  as_root umount "$SWIFT_ROOT/yilian" || true
  as_root umount "$SWIFT_ROOT/proc" || true
  return $status
}
