import Foundation
import YilianFFI

/// Records changed on this phone: `patientIds` have new changes (empty: records left the phone).
public struct RecordsChange: Sendable, Equatable {
    /// The records with new changes.
    public let patientIds: [String]
    /// The change was an edit on this phone (not one synced from the relay).
    public let localEdit: Bool
}

private final class StatusForwarder: SyncObserver, @unchecked Sendable {
    let continuation: AsyncStream<SyncStatus>.Continuation
    init(_ continuation: AsyncStream<SyncStatus>.Continuation) { self.continuation = continuation }
    func onStatus(status: SyncStatus) { continuation.yield(status) }
}

private final class ChangeForwarder: RecordsObserver, @unchecked Sendable {
    let onChange: @Sendable (RecordsChange) -> Void
    init(_ onChange: @escaping @Sendable (RecordsChange) -> Void) { self.onChange = onChange }
    func onRecordsChanged(patientIds: [String], localEdit: Bool) {
        onChange(RecordsChange(patientIds: patientIds, localEdit: localEdit))
    }
}

public extension YilianSyncAgent {
    /// The agent's status: the current status first, then every change, none dropped (a screen
    /// that only wants the latest can read the last value). Ending the iteration unregisters.
    func statusStream() -> AsyncStream<SyncStatus> {
        AsyncStream(bufferingPolicy: .unbounded) { continuation in
            do {
                let handle = try observe(observer: StatusForwarder(continuation))
                continuation.onTermination = { _ in handle.cancel() }
            } catch {
                continuation.finish()
            }
        }
    }
}

public extension YilianStore {
    /// Record changes (edits here, changes from the relay, records leaving the phone's scope),
    /// for screens that refresh what they show.
    func recordChanges() -> AsyncStream<RecordsChange> {
        AsyncStream(bufferingPolicy: .unbounded) { continuation in
            do {
                let handle = try observeRecords(observer: ChangeForwarder { continuation.yield($0) })
                continuation.onTermination = { _ in handle.cancel() }
            } catch {
                continuation.finish()
            }
        }
    }

    /// A query kept up to date: runs `query` now and again after every change of the records,
    /// e.g. `store.live { try await $0.dueFollowUps(practitionerId: "dr-wang", today: today) }`.
    /// Registered before the first run, so no change between the two is missed. A query that
    /// throws ends the stream with that error.
    func live<T: Sendable>(
        _ query: @escaping @Sendable (YilianStore) async throws -> T
    ) -> AsyncThrowingStream<T, Error> {
        let changes = recordChanges()
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    continuation.yield(try await query(self))
                    for await _ in changes {
                        continuation.yield(try await query(self))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
