#if canImport(Network)
import Network
import YilianFFI

/// Feeds the system's network path to the agent's hint: a usable path makes it sync at once (and
/// move a live connection to the new interface), none stops retries until the next hint.
public final class ConnectivityHint: @unchecked Sendable {
    private let monitor = NWPathMonitor()

    /// Starts watching the network for `agent`.
    public init(agent: YilianSyncAgent) {
        monitor.pathUpdateHandler = { path in
            try? agent.networkChanged(available: path.status == .satisfied)
        }
        monitor.start(queue: DispatchQueue(label: "org.yilian.connectivity"))
    }

    deinit {
        monitor.cancel()
    }
}
#endif
