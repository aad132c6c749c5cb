// swift-tools-version:6.1
import PackageDescription

// Module layout; dependencies point one way, from the edge to the core:
//
//   pbft (CLI) ─▶ PBFTCluster ─▶ PBFTCrypto ─▶ PBFTWire
//                      │              └──▶ CSodium (libsodium)
//                      └──▶ PBFTCore ─▶ PBFTWire
//
// PBFTWire and PBFTCore are pure: no Foundation, no NIO, no clock, no randomness.
// PBFTRuntime (the UDP shell), PBFTSimulator and PBFTTestbed (launcher, fault proxy) sit beside PBFTCluster.

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "pbft",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pbft", targets: ["pbft"]),
        .library(name: "PBFTWire", targets: ["PBFTWire"]),
        .library(name: "PBFTCrypto", targets: ["PBFTCrypto"]),
        .library(name: "PBFTCore", targets: ["PBFTCore"]),
        .library(name: "PBFTCluster", targets: ["PBFTCluster"]),
        .library(name: "PBFTKeyValue", targets: ["PBFTKeyValue"]),
        .library(name: "PBFTSimulator", targets: ["PBFTSimulator"]),
        .library(name: "PBFTByzantine", targets: ["PBFTByzantine"]),
        .library(name: "PBFTStorage", targets: ["PBFTStorage"]),
        .library(name: "PBFTRuntime", targets: ["PBFTRuntime"]),
        .library(name: "PBFTTestbed", targets: ["PBFTTestbed"]),
        .library(name: "PBFTCheck", targets: ["PBFTCheck"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(name: "PBFTWire", swiftSettings: strict),
        .target(name: "PBFTCrypto", dependencies: ["CSodium", "PBFTWire"], swiftSettings: strict),
        .target(name: "PBFTCore", dependencies: ["PBFTWire"], swiftSettings: strict),
        .target(name: "PBFTKeyValue", dependencies: ["PBFTCore", "PBFTWire"], swiftSettings: strict),
        .target(name: "PBFTByzantine", dependencies: ["PBFTCore", "PBFTWire"], swiftSettings: strict),
        .target(
            name: "PBFTSimulator",
            dependencies: ["PBFTCore", "PBFTWire", "PBFTCrypto", "PBFTKeyValue", "PBFTByzantine"],
            swiftSettings: strict
        ),
        .target(name: "PBFTStorage", swiftSettings: strict),
        .target(name: "CProcessSupport"),
        .target(
            name: "PBFTRuntime",
            dependencies: [
                "PBFTCore", "PBFTWire", "PBFTCrypto", "PBFTKeyValue", "PBFTStorage", "PBFTCluster", "PBFTByzantine", "CProcessSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PBFTTestbed",
            dependencies: [
                "PBFTRuntime", "PBFTCluster", "PBFTCore", "PBFTWire", "PBFTCrypto", "PBFTByzantine", "PBFTKeyValue", "PBFTCheck",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(name: "PBFTBench", dependencies: ["PBFTCrypto", "PBFTWire"], swiftSettings: strict),
        .target(name: "PBFTCheck", dependencies: ["PBFTWire", "PBFTCore", "PBFTKeyValue", "PBFTCrypto", "PBFTCluster"], swiftSettings: strict),
        .target(
            name: "PBFTCluster",
            dependencies: ["PBFTWire", "PBFTCrypto", "PBFTCore", "TOMLKit"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "pbft",
            dependencies: [
                "PBFTCluster", "PBFTCrypto", "PBFTWire", "PBFTCore", "PBFTSimulator", "PBFTRuntime", "PBFTKeyValue", "PBFTTestbed", "PBFTByzantine", "PBFTCheck", "PBFTBench",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "PBFTWireTests", dependencies: ["PBFTWire", "PBFTCrypto", "PBFTCore", "PBFTTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "PBFTCryptoTests",
            dependencies: ["PBFTCrypto", "PBFTWire"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PBFTCoreTests",
            dependencies: ["PBFTCore", "PBFTWire", "PBFTCrypto", "PBFTKeyValue", "PBFTSimulator", "PBFTByzantine"],
            swiftSettings: strict
        ),
        .target(name: "PBFTTestSupport", dependencies: ["PBFTByzantine", "PBFTTestbed", "PBFTCheck"], path: "Tests/PBFTTestSupport", swiftSettings: strict),
        .testTarget(name: "PBFTStorageTests", dependencies: ["PBFTStorage", "PBFTTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "PBFTRuntimeTests",
            dependencies: ["PBFTRuntime", "PBFTCore", "PBFTWire", "PBFTCrypto", "PBFTKeyValue", "PBFTCluster", "PBFTTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PBFTTestbedTests",
            dependencies: [
                "PBFTTestbed", "PBFTRuntime", "PBFTCore", "PBFTWire", "PBFTCrypto", "PBFTKeyValue", "PBFTCluster", "PBFTTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "PBFTBenchTests", dependencies: ["PBFTBench"], swiftSettings: strict),
        .testTarget(name: "PBFTCheckTests", dependencies: ["PBFTCheck", "PBFTKeyValue", "PBFTWire", "PBFTTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "PBFTClusterTests",
            dependencies: ["PBFTCluster", "PBFTCrypto", "PBFTWire", "PBFTCore", "PBFTTestSupport"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
