#!/usr/bin/env bash
# Installs Swift 6 for the iOS package's tests: Debian trixie's swiftlang in a trixie chroot under
# .tools/swift-trixie (Debian 12 has no Swift; trixie's needs trixie's glibc). Once: later runs
# find it in place. Sourced; defines `in_swift_chroot DIR COMMAND...`, which runs COMMAND inside
# the chroot with the repository bind-mounted at /yilian and DIR as the working directory.
set -euo pipefail
YILIAN_ROOT="${YILIAN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SWIFT_ROOT="$YILIAN_ROOT/.tools/swift-trixie"

as_root() { if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi; }

# usr/bin/swift is an absolute symlink (to /usr/libexec/...), which only resolves inside the
# chroot: test the compiler it points at.
if [ ! -x "$SWIFT_ROOT/usr/libexec/swift/bin/swift-frontend" ]; then
  echo "swift: installing swiftlang 6 in a Debian trixie chroot at .tools/swift-trixie (once, ~1.5 GB)" >&2
  if ! command -v debootstrap >/dev/null 2>&1; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap
  fi
  mkdir -p "$YILIAN_ROOT/.tools"
  if [ ! -x "$SWIFT_ROOT/usr/bin/apt-get" ]; then
    rm -rf "$SWIFT_ROOT"
    as_root debootstrap --variant=minbase trixie "$SWIFT_ROOT" http://deb.debian.org/debian >/dev/null
  fi
  # The tests compile and run Swift; they need no debugger, IDE services, documentation tools,
  # Embedded Swift or the static runtime. dpkg leaves those out (about 1.1 GB of swiftlang's
  # 2.1 GB), and the downloaded packages are removed once installed (about 0.6 GB).
  as_root mkdir -p "$SWIFT_ROOT/etc/dpkg/dpkg.cfg.d"
  as_root tee "$SWIFT_ROOT/etc/dpkg/dpkg.cfg.d/yilian-swift-tests-only" >/dev/null <<'EXCLUDE'
path-exclude=/usr/libexec/swift/bin/lldb*
path-exclude=/usr/libexec/swift/lib/liblldb*
path-exclude=/usr/libexec/swift/lib/libsourcekitdInProc.so
path-exclude=/usr/libexec/swift/bin/sourcekit-lsp
path-exclude=/usr/libexec/swift/bin/clangd
path-exclude=/usr/libexec/swift/bin/docc
path-exclude=/usr/libexec/swift/bin/swift-format
path-exclude=/usr/libexec/swift/bin/llvm-cov
path-exclude=/usr/libexec/swift/bin/llvm-profdata
path-exclude=/usr/libexec/swift/lib/swift/embedded/*
path-exclude=/usr/libexec/swift/lib/swift_static/*
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
EXCLUDE
  free_kb="$(df -Pk "$YILIAN_ROOT/.tools" | awk 'NR==2 {print $4}')"
  if [ "$free_kb" -lt $((2 * 1024 * 1024)) ]; then
    echo "swift: installing Swift needs about 2 GB free at $YILIAN_ROOT/.tools; only $((free_kb / 1024)) MB are" >&2
    exit 1
  fi
  as_root chroot "$SWIFT_ROOT" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends swiftlang libc6-dev libstdc++-14-dev >/dev/null \
    && apt-get clean'
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
