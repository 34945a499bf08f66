// swift-tools-version:5.9
// Yilian for iOS: the generated uniffi bindings (YilianFFI, over the C header YilianFFIC) and a
// Swift wrapper (Yilian: async/await, AsyncStreams, Keychain, background sync).
//
// On macOS/iOS the Rust library comes from the XCFramework that build-xcframework.sh makes.
// On Linux (the tests on Yilian's development machines) it links the host-built
// ../target/debug/libyilian_ffi.so (scripts/test-ios).
import PackageDescription

#if os(Linux)
let rustLibrary: [Target] = [
    .systemLibrary(name: "YilianFFIC", path: "Sources/YilianFFIC/Generated"),
]
let rustDependency: [Target.Dependency] = ["YilianFFIC"]
let rustLinking: [LinkerSetting] = [
    .linkedLibrary("yilian_ffi"),
    .unsafeFlags(["-L../target/debug"]),
]
#else
let rustLibrary: [Target] = [
    .binaryTarget(name: "YilianFFIC", path: "build/YilianFFI.xcframework"),
]
let rustDependency: [Target.Dependency] = ["YilianFFIC"]
let rustLinking: [LinkerSetting] = []
#endif

let package = Package(
    name: "Yilian",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Yilian", targets: ["Yilian"]),
    ],
    targets: rustLibrary + [
        .target(
            name: "YilianFFI",
            dependencies: rustDependency,
            path: "Sources/YilianFFI",
            linkerSettings: rustLinking
        ),
        .target(name: "Yilian", dependencies: ["YilianFFI"], path: "Sources/Yilian"),
        .testTarget(name: "YilianTests", dependencies: ["Yilian"], path: "Tests/YilianTests"),
    ]
)
