import SwiftUI
import Yilian

/// The sample app: a family doctor's day on Yilian (source only; see README.md).
@main
struct YilianSampleApp: App {
    @StateObject private var model = DoctorModel()

    init() {
        BackgroundSync.register { DoctorModel.shared }
    }

    var body: some Scene {
        WindowGroup {
            TodayView().environmentObject(model)
                .task { await model.start() }
        }
    }
}

/// Opens the store with the Keychain key, keeps the due list and sync status current.
@MainActor
final class DoctorModel: ObservableObject {
    nonisolated(unsafe) static var shared: Yilian?
    static let doctor = "dr-wang"
    static let clinic = "shiqiao"

    @Published var due: [DueFollowUp] = []
    @Published var status: SyncStatus?
    @Published var problem: String?
    private(set) var yilian: Yilian?
    private var connectivity: ConnectivityHint?

    func start() async {
        do {
            let folder = try FileManager.default.url(
                for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            let yilian = try await Yilian.open(folder: folder, key: try KeychainKey.storeKey())
            self.yilian = yilian
            Self.shared = yilian
            if let config = Self.savedConfig() {
                let agent = try yilian.startSync(config)
                connectivity = ConnectivityHint(agent: agent)
                Task { for await s in yilian.syncStatus() { self.status = s } }
            }
            let today = Date().yilianDay
            for try await list in yilian.store.live({ try await $0.dueFollowUps(practitionerId: Self.doctor, today: today) }) {
                due = list
            }
        } catch {
            problem = error.localizedDescription
        }
    }

    static func savedConfig() -> SyncConfig? {
        let d = UserDefaults.standard
        guard let relay = d.string(forKey: "relay"), let fp = d.string(forKey: "fingerprint"),
              let device = d.string(forKey: "device") else { return nil }
        return SyncConfig(relay: relay, fingerprint: fp, deviceId: device)
    }
}
