#!/usr/bin/env bash
# Builds YilianFFI.xcframework for real iOS users (on macOS with Xcode): the Rust library for
# iPhones and both simulators, the Swift bindings, and the framework Package.swift points at.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname)" = Darwin ] || { echo "build-xcframework.sh needs macOS and Xcode" >&2; exit 1; }
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do cargo build --release -p yilian-ffi --target "$t"; done

cargo build --release -p yilian-ffi   # host library: bindgen reads its metadata
cargo run -q -p uniffi-bindgen -- generate target/release/libyilian_ffi.dylib --language swift --out-dir ios/build/bindings
mkdir -p ios/Sources/YilianFFI/Generated ios/build/headers
cp ios/build/bindings/YilianFFI.swift ios/Sources/YilianFFI/Generated/
cp ios/build/bindings/YilianFFIC.h ios/build/headers/
cp ios/build/bindings/YilianFFIC.modulemap ios/build/headers/module.modulemap

mkdir -p target/universal-ios-sim/release
lipo -create target/aarch64-apple-ios-sim/release/libyilian_ffi.a target/x86_64-apple-ios/release/libyilian_ffi.a \
  -output target/universal-ios-sim/release/libyilian_ffi.a
rm -rf ios/build/YilianFFI.xcframework
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libyilian_ffi.a -headers ios/build/headers \
  -library target/universal-ios-sim/release/libyilian_ffi.a -headers ios/build/headers \
  -output ios/build/YilianFFI.xcframework
echo "ios/build/YilianFFI.xcframework ready; add the ios/ package to the Xcode project"
