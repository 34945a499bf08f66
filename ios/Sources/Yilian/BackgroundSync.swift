#if os(iOS)
import BackgroundTasks
import Foundation

/// Background sync with BGTaskScheduler: iOS wakes the app now and then (when it sees fit, with
/// a network) and Yilian syncs once. Register at launch (before the app finishes launching) and
/// schedule when the app goes to the background. The identifier must be listed under
/// `BGTaskSchedulerPermittedIdentifiers` in Info.plist.
public enum BackgroundSync {
    /// The task identifier.
    public static let identifier = "org.yilian.sync"

    /// Registers the handler; `yilian` gives the app's shared instance.
    public static func register(yilian: @escaping @Sendable () -> Yilian?) {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            schedule()
            let work = Task {
                let ok = (try? await yilian()?.syncNow(timeout: 25)) != nil
                task.setTaskCompleted(success: ok)
            }
            task.expirationHandler = { work.cancel() }
        }
    }

    /// Asks iOS for the next run, no sooner than 15 minutes from now, with a network.
    public static func schedule() {
        let request = BGAppRefreshTaskRequest(identifier: identifier)
        request.earliestBeginDate = Date(timeIntervalSinceNow: 15 * 60)
        try? BGTaskScheduler.shared.submit(request)
    }
}
#endif
