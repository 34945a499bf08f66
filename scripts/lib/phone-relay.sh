#!/usr/bin/env bash
# A real relay for the phone libraries' tests: a county hospital and a village clinic, a family
# doctor (dr-wang, team-shiqiao) and a referral-desk doctor (dr-li, county), one enrollment code
# for each, and `yilian-relay serve` on a free loopback port. Sourced; `start_phone_relay` exports
# YILIAN_RELAY, YILIAN_FINGERPRINT, YILIAN_CODE_A (dr-wang), YILIAN_CODE_B (dr-li), YILIAN_CODE_C (dr-wang's second phone);
# `show_phone_relay_log` prints its last log lines; `stop_phone_relay` ends it. Expects target/debug/yilian-relay to be built.

start_phone_relay() {
  local relay="$YILIAN_ROOT/target/debug/yilian-relay"
  PHONE_RELAY_DIR="$(mktemp -d)"
  local d="--data-dir $PHONE_RELAY_DIR/data"
  $relay org add $d --id county --name 县人民医院 --kind county_hospital >/dev/null
  $relay org add $d --id shiqiao --name 石桥村卫生室 --kind village_clinic --part-of county >/dev/null
  $relay practitioner add $d --id dr-wang --name 王医生 --role family_doctor --org shiqiao >/dev/null
  $relay practitioner add $d --id dr-li --name 李医生 --role referral_desk --org county >/dev/null
  $relay team add $d --id team-shiqiao --name 石桥一队 --org shiqiao --member dr-wang >/dev/null
  YILIAN_CODE_A="$($relay code $d --practitioner dr-wang 2>/dev/null)"
  YILIAN_CODE_B="$($relay code $d --practitioner dr-li 2>/dev/null)"
  YILIAN_CODE_C="$($relay code $d --practitioner dr-wang 2>/dev/null)"
  YILIAN_FINGERPRINT="$($relay fingerprint $d)"
  $relay serve $d --listen 127.0.0.1:0 --http 127.0.0.1:0 >"$PHONE_RELAY_DIR/out" 2>"$PHONE_RELAY_DIR/err" &
  PHONE_RELAY_PID=$!
  local i
  for i in $(seq 1 100); do
    YILIAN_RELAY="$(sed -n 's/^yilian-relay listening on \([0-9.:]*\) .*/\1/p' "$PHONE_RELAY_DIR/out")"
    [ -n "$YILIAN_RELAY" ] && break
    kill -0 "$PHONE_RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$YILIAN_RELAY" ]; then
    echo "phone-relay: the relay did not start:" >&2; cat "$PHONE_RELAY_DIR/err" >&2
    return 1
  fi
  export YILIAN_RELAY YILIAN_FINGERPRINT YILIAN_CODE_A YILIAN_CODE_B YILIAN_CODE_C
}

# The relay's last log lines, for a failed test run (what the relay saw of the phones' sessions).
show_phone_relay_log() {
  [ -n "${PHONE_RELAY_DIR:-}" ] || return 0
  echo "== the test relay's last log lines" >&2
  tail -n 60 "$PHONE_RELAY_DIR/out" "$PHONE_RELAY_DIR/err" >&2 || true
}

stop_phone_relay() {
  if [ -n "${PHONE_RELAY_PID:-}" ]; then
    kill "$PHONE_RELAY_PID" 2>/dev/null || true
    wait "$PHONE_RELAY_PID" 2>/dev/null || true
    PHONE_RELAY_PID=""
  fi
  [ -n "${PHONE_RELAY_DIR:-}" ] && rm -rf "$PHONE_RELAY_DIR"
  PHONE_RELAY_DIR=""
}
