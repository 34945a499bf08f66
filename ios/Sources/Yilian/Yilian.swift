import Foundation
@_exported import YilianFFI

/// Yilian on an iPhone: the doctor's records (`store`, the whole care API as `async` calls) and,
/// once enrolled, the sync agent that keeps them in step with the consortium's relay.
///
/// Platform-neutral (it builds and is tested on Linux); the iOS glue (Keychain key, background
/// tasks) sits in `Keychain.swift` and `BackgroundSync.swift`.
public final class Yilian: @unchecked Sendable {
    /// The records and the care API.
    public let store: YilianStore
    private let lock = NSLock()
    private var agent: YilianSyncAgent?

    /// File name of the store inside the app's folder.
    public static let database = "yilian.db"

    private init(store: YilianStore) {
        self.store = store
    }

    /// Opens (creating if needed) the store in `folder`, encrypted with `key` (32 bytes, from the
    /// Keychain) or plain when nil.
    public static func open(folder: URL, key: Data?) async throws -> Yilian {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent(database).path
        return Yilian(store: try await YilianStore.open(path: path, encryptionKey: key))
    }

    /// Enrolls this phone with the relay of `config` using the administrator's one-time `code`.
    public func enroll(_ config: SyncConfig, code: String) async throws -> Enrollment {
        try await YilianFFI.enroll(store: store, config: config, code: code)
    }

    /// Starts syncing with the relay of `config` (once enrolled); the running agent.
    @discardableResult
    public func startSync(_ config: SyncConfig) throws -> YilianSyncAgent {
        lock.lock()
        defer { lock.unlock() }
        if let agent { return agent }
        let started = try YilianSyncAgent.start(store: store, config: config)
        agent = started
        return started
    }

    /// The running agent, if sync was started.
    public var syncAgent: YilianSyncAgent? {
        lock.lock()
        defer { lock.unlock() }
        return agent
    }

    /// The sync status as a stream (finishes at once when sync is not started).
    public func syncStatus() -> AsyncStream<SyncStatus> {
        guard let agent = syncAgent else { return AsyncStream { $0.finish() } }
        return agent.statusStream()
    }

    /// Syncs now and returns once synced; throws `SyncError` when the relay cannot be reached,
    /// refuses, or `timeout` (seconds) passes.
    @discardableResult
    public func syncNow(timeout: TimeInterval = 60) async throws -> SyncStatus {
        guard let agent = syncAgent else {
            throw SyncError.Configuration(field: "agent", reason: "sync is not started")
        }
        return try await agent.syncNow(timeoutMs: UInt64(timeout * 1000))
    }

    /// Stops the agent, ending its session with the relay cleanly.
    public func stopSync() async throws {
        lock.lock()
        let running = agent
        agent = nil
        lock.unlock()
        try await running?.stop()
    }
}
