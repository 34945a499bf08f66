#!/usr/bin/env bash
# Builds libyilian_ffi.so for the Android ABIs phones use (cargo-ndk + the Android NDK, on a
# machine that has them) into yilian/src/main/jniLibs, and the Kotlin bindings.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-ndk >/dev/null || cargo install cargo-ndk
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -o android/yilian/src/main/jniLibs \
  build --release -p yilian-ffi
scripts/bindings --release
