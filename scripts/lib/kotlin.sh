#!/usr/bin/env bash
# Installs the Kotlin compiler (npm's kotlin-compiler: the full distribution, no Maven needed) and
# JNA (Debian's libjna-java) under .tools/, once. Sourced; sets KOTLINC, KOTLIN_LIB and JNA_JAR.
set -euo pipefail
YILIAN_ROOT="${YILIAN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
KOTLIN_VERSION=2.4.20
KOTLIN_HOME="$YILIAN_ROOT/.tools/kotlin/node_modules/kotlin-compiler"

apt_install() {
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

command -v java >/dev/null 2>&1 || apt_install default-jdk-headless
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
[ -f /usr/share/java/jna.jar ] || apt_install libjna-java

if [ ! -x "$KOTLIN_HOME/bin/kotlinc-jvm" ]; then
  echo "kotlin: installing kotlin-compiler@$KOTLIN_VERSION from npm into .tools/kotlin" >&2
  mkdir -p "$YILIAN_ROOT/.tools/kotlin"
  (cd "$YILIAN_ROOT/.tools/kotlin" && npm install --silent --no-audit --no-fund "kotlin-compiler@$KOTLIN_VERSION" >&2)
  chmod +x "$KOTLIN_HOME"/bin/* 2>/dev/null || true
fi

KOTLINC="$KOTLIN_HOME/bin/kotlinc-jvm"
KOTLIN_LIB="$KOTLIN_HOME/lib"
JNA_JAR=/usr/share/java/jna.jar
export KOTLINC KOTLIN_LIB JNA_JAR
