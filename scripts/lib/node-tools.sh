#!/usr/bin/env bash
# The Node test tools in tests/js: FHIR R4 validation of generated JSON (npm's fhir, FHIR.js) and a
# headless-Chromium check of a web page (npm's playwright-core driving Debian's /usr/bin/chromium;
# Playwright's own browser download is never used). Sourced; defines
#   ensure_node_tools                 installs what is missing: nodejs/npm, chromium and a CJK font
#                                     (fonts-wqy-microhei) with apt,
#                                     then `npm ci` in tests/js when node_modules is missing or
#                                     older than package-lock.json (a no-op, ~0.1 s, when all there)
#   validate_fhir PATH...             validates every *.json under PATH (one resource or Bundle per
#                                     file); prints ok/FAIL per resource and `fhir: N valid, M invalid`
#   check_dashboard URL SHOT TEXT...  loads URL, waits for every TEXT, writes a full-page PNG to SHOT;
#                                     fails on console errors, page errors, failed requests
# Both checks return the script's exit status (non-zero on any problem).
set -euo pipefail
YILIAN_ROOT="${YILIAN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
NODE_TOOLS_DIR="$YILIAN_ROOT/tests/js"
CHROMIUM=/usr/bin/chromium

node_tools_apt_install() {
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

ensure_node_tools() {
  local need=()
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  [ -x "$CHROMIUM" ] || need+=(chromium)
  # a CJK font (5 MB), or Chinese text in screenshots shows as empty boxes
  if ! { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family)" ]; }; then
    need+=(fonts-wqy-microhei)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "node-tools: installing ${need[*]} with apt" >&2
    node_tools_apt_install "${need[@]}" >&2
  fi
  local major; major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -lt 18 ]; then
    echo "node-tools: Node.js $major is too old: tests/js needs >= 18 (Debian 12's nodejs is 18)" >&2
    return 1
  fi
  local modules="$NODE_TOOLS_DIR/node_modules"
  # npm ci writes node_modules/.package-lock.json last: it is the stamp of a finished install.
  if [ ! -f "$modules/.package-lock.json" ] || [ "$NODE_TOOLS_DIR/package-lock.json" -nt "$modules/.package-lock.json" ]; then
    echo "node-tools: npm ci in tests/js" >&2
    (cd "$NODE_TOOLS_DIR" && npm ci --silent --no-audit --no-fund >&2)
    touch "$modules/.package-lock.json"
  fi
}

validate_fhir() {
  [ $# -gt 0 ] || { echo "usage: validate_fhir PATH..." >&2; return 2; }
  node "$NODE_TOOLS_DIR/validate-fhir.mjs" "$@"
}

validate_openapi() {
  [ $# -eq 1 ] || { echo "usage: validate_openapi FILE" >&2; return 2; }
  node "$NODE_TOOLS_DIR/validate-openapi.mjs" "$1"
}

check_dashboard() {
  [ $# -ge 3 ] || { echo "usage: check_dashboard URL SCREENSHOT TEXT..." >&2; return 2; }
  node "$NODE_TOOLS_DIR/dashboard-check.mjs" "$@"
}
