import Foundation
import XCTest
@testable import Yilian

// XCTest of the Swift package against the real Rust library (libyilian_ffi.so, built with its
// test hooks) and, for sync, a real relay that scripts/test-ios starts (YILIAN_RELAY,
// YILIAN_FINGERPRINT, YILIAN_CODE_A for dr-wang of the village clinic, YILIAN_CODE_B for dr-li of
// the county referral desk, YILIAN_CODE_C for dr-wang's second phone).

private func tempFolder() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("yilian-swift-\(UUID().uuidString)")
}

private func resident(_ name: String) -> NewPatient {
    NewPatient(
        demographics: Demographics(
            name: name, sex: .female, birthDate: "1952-03-14", nationalId: nil, phone: nil, address: nil,
            village: "石桥村"),
        practitionerId: "dr-wang", organizationId: "shiqiao")
}

private func followUp(_ systolic: UInt16, _ diastolic: UInt16) -> NewVisit {
    NewVisit(
        at: Date().yilianMillis, organizationId: "shiqiao", practitionerId: "dr-wang", kind: .followUp,
        vitals: Vitals(systolicMmhg: systolic, diastolicMmhg: diastolic),
        symptoms: ["头晕"], diagnoses: ["I10"],
        medicines: [Medicine(name: "氨氯地平", dose: "5 mg", frequency: "qd", adherence: .regular)],
        lifestyle: Lifestyle(), notes: "")
}

private func upward() -> NewReferral {
    NewReferral(
        direction: .upward, fromOrganizationId: "shiqiao", fromPractitionerId: "dr-wang",
        toOrganizationId: "county", reason: "血压控制不佳，两次随访 >180/110", urgency: .urgent,
        clinicalSummary: "高血压 10 年，氨氯地平 5 mg qd", inResponseTo: nil)
}

private struct MissingRelay: Error, CustomStringConvertible {
    let variable: String
    var description: String { "\(variable) is not set: run scripts/test-ios, which starts the relay" }
}

private func env(_ name: String) throws -> String {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        throw MissingRelay(variable: name)
    }
    return value
}

private func syncConfig(_ device: String) throws -> SyncConfig {
    SyncConfig(relay: try env("YILIAN_RELAY"), fingerprint: try env("YILIAN_FINGERPRINT"), deviceId: device)
}

/// Runs `body` and fails the test if it does not finish within `seconds`.
private func within<T: Sendable>(
    _ seconds: Double, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            return nil
        }
        guard let first = try await group.next(), let value = first else {
            group.cancelAll()
            throw CancellationError()
        }
        group.cancelAll()
        return value
    }
}

/// The phone's sync status as it is now (the first value of its status stream).
private func statusNow(_ phone: Yilian) async -> String {
    for await status in phone.syncStatus() {
        return "\(status.state) connected \(status.connected) synced \(status.synced) "
            + "unacknowledged \(status.unacknowledged) sessions \(status.sessions) "
            + "last error \(status.lastError ?? "none")"
    }
    return "no status"
}

/// `within`, for a step of a test with two phones: a step that does not happen in time fails
/// naming it, with both phones' sync status (where it stuck).
private func step<T: Sendable>(
    _ what: String, _ seconds: Double, _ phones: [(String, Yilian)],
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    do {
        return try await within(seconds, body)
    } catch is CancellationError {
        var where_ = [String]()
        for (name, phone) in phones {
            where_.append("\(name): \(await statusNow(phone))")
        }
        XCTFail("\(what) did not happen within \(Int(seconds)) s; " + where_.joined(separator: "; "))
        throw CancellationError()
    }
}

final class YilianTests: XCTestCase {
    func testAStoreInATempFolderKeepsTheVisitsAcrossAReopen() async throws {
        let folder = tempFolder()
        let first = try await Yilian.open(folder: folder, key: nil)
        let patient = try await first.store.createPatient(patient: resident("王秀英"))
        _ = try await first.store.recordVisit(patientId: patient, visit: followUp(152, 94))
        _ = try await first.store.recordVisit(patientId: patient, visit: followUp(138, 86))

        let again = try await Yilian.open(folder: folder, key: nil)
        let visits = try await again.store.visits(patientId: patient)
        XCTAssertEqual(visits.map { $0.vitals.systolicMmhg }, [152, 138])
        XCTAssertEqual(visits[0].medicines.first?.medicine.name, "氨氯地平")
        let record = try await again.store.patient(patientId: patient)
        XCTAssertEqual(record.patient.demographics.name, "王秀英")
    }

    func testAnEncryptedStoreOpensOnlyWithItsKey() async throws {
        let folder = tempFolder()
        let key = Data((0..<32).map { UInt8($0) })
        let yilian = try await Yilian.open(folder: folder, key: key)
        _ = try await yilian.store.createPatient(patient: resident("李桂兰"))
        do {
            _ = try await Yilian.open(folder: folder, key: Data(repeating: 7, count: 32))
            XCTFail("a wrong key opened the store")
        } catch CareError.WrongKey {
            // The app asks for the right key; "update the app" is CareError.NewerVersion.
        }
        let reopened = try await Yilian.open(folder: folder, key: key)
        let ids = try await reopened.store.patientIds()
        XCTAssertEqual(ids.count, 1)
    }

    func testAnOutOfRangeVitalIsATypedErrorNamingTheField() async throws {
        let yilian = try await Yilian.open(folder: tempFolder(), key: nil)
        let patient = try await yilian.store.createPatient(patient: resident("赵建国"))
        do {
            _ = try await yilian.store.recordVisit(patientId: patient, visit: followUp(400, 90))
            XCTFail("a systolic of 400 was accepted")
        } catch CareError.Validation(let field, let reason) {
            XCTAssertEqual(field, "visit.vitals.systolic_mmhg")
            XCTAssertTrue(reason.contains("400"), reason)
        }
        let visits = try await yilian.store.visits(patientId: patient)
        XCTAssertEqual(visits.count, 0)
    }

    func testAReferralStepTheWorkflowForbidsIsATransitionError() async throws {
        let yilian = try await Yilian.open(folder: tempFolder(), key: nil)
        let patient = try await yilian.store.createPatient(patient: resident("孙丽"))
        let referral = try await yilian.store.createReferral(patientId: patient, referral: upward())
        _ = try await yilian.store.addReferralEvent(
            referralId: referral,
            event: NewReferralEvent(
                status: .rejected, byPractitionerId: "dr-li", byOrganizationId: "county", note: "no beds"))
        do {
            _ = try await yilian.store.addReferralEvent(
                referralId: referral,
                event: NewReferralEvent(status: .accepted, byPractitionerId: "dr-li", byOrganizationId: "county", note: ""))
            XCTFail("a rejected referral was accepted")
        } catch CareError.Transition(_, let from, let to) {
            XCTAssertEqual(from, "rejected")
            XCTAssertEqual(to, "accepted")
        }
        let status = try await yilian.store.referralStatus(referralId: referral)
        XCTAssertEqual(status, .rejected)
    }

    func testAPanicInsideARustCallIsAnErrorAndTheStoreKeepsWorking() async throws {
        let yilian = try await Yilian.open(folder: tempFolder(), key: nil)
        do {
            try await panicInsideCall(message: "deliberate test panic")
            XCTFail("the panic did not come back")
        } catch CareError.Internal(let reason) {
            XCTAssertTrue(reason.contains("deliberate test panic"), reason)
        }
        let patient = try await yilian.store.createPatient(patient: resident("钱芳"))
        let record = try await yilian.store.patient(patientId: patient)
        XCTAssertEqual(record.patient.demographics.name, "钱芳")
    }

    func testCallsFromManyTasksAtOnceAreSafe() async throws {
        let yilian = try await Yilian.open(folder: tempFolder(), key: nil)
        var patients: [String] = []
        for n in 1...4 { patients.append(try await yilian.store.createPatient(patient: resident("居民\(n)"))) }
        let store = yilian.store
        let ids = patients
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    let patient = ids[worker % ids.count]
                    for _ in 0..<5 {
                        _ = try await store.recordVisit(patientId: patient, visit: followUp(UInt16(120 + worker), 80))
                    }
                    _ = try await store.visits(patientId: patient)
                }
            }
            try await group.waitForAll()
        }
        var visitIds = Set<String>()
        for patient in patients {
            let visits = try await store.visits(patientId: patient)
            XCTAssertEqual(visits.count, 20)
            visitIds.formUnion(visits.map { $0.id })
        }
        XCTAssertEqual(visitIds.count, 80)
    }

    func testAReferralMadeOnTheVillagePhoneReachesTheCountyDesksPhoneThroughARealRelay() async throws {
        let wang = try await Yilian.open(folder: tempFolder(), key: nil)
        let li = try await Yilian.open(folder: tempFolder(), key: nil)
        do {
            _ = try await li.enroll(try syncConfig("sw-li"), code: "0000-0000-0000-0000-0000")
            XCTFail("a made-up code was accepted")
        } catch SyncError.Unauthorized(let reason) {
            XCTAssertTrue(reason.contains("code"), reason)
        }
        let wangEnrolled = try await wang.enroll(try syncConfig("sw-wang"), code: try env("YILIAN_CODE_A"))
        XCTAssertEqual(wangEnrolled.practitionerId, "dr-wang")
        let liEnrolled = try await li.enroll(try syncConfig("sw-li"), code: try env("YILIAN_CODE_B"))
        XCTAssertEqual(liEnrolled.organizationId, "county")

        let patient = try await wang.store.createPatient(patient: resident("周大爷"))
        let now = Date()
        _ = try await wang.store.signContract(
            patientId: patient,
            contract: NewContract(
                teamId: "team-shiqiao", practitionerId: "dr-wang", organizationId: "shiqiao",
                start: now.addingTimeInterval(-30 * 86400).yilianDay, end: now.addingTimeInterval(335 * 86400).yilianDay))
        _ = try await wang.store.recordVisit(patientId: patient, visit: followUp(186, 112))
        let referral = try await wang.store.createReferral(patientId: patient, referral: upward())
        try wang.startSync(try syncConfig("sw-wang"))
        let synced = try await wang.syncNow(timeout: 30)
        XCTAssertTrue(synced.synced)

        try li.startSync(try syncConfig("sw-li"))
        try await li.syncNow(timeout: 30)
        let desk = li.store
        let arrived = try await step("the referral reaching the desk", 30, [("village", wang), ("desk", li)]) {
            for try await list in desk.live({ try await $0.openReferrals(organizationId: "county") })
            where list.contains(where: { $0.referralId == referral }) {
                return list
            }
            throw CancellationError()
        }
        XCTAssertEqual(arrived.first { $0.referralId == referral }?.patientName, "周大爷")
        _ = try await desk.addReferralEvent(
            referralId: referral,
            event: NewReferralEvent(status: .received, byPractitionerId: "dr-li", byOrganizationId: "county", note: ""))
        _ = try await desk.addReferralEvent(
            referralId: referral,
            event: NewReferralEvent(status: .accepted, byPractitionerId: "dr-li", byOrganizationId: "county", note: "bed 12"))

        // The desk's acceptance flows back to the village phone over its live session.
        let village = wang.store
        let status = try await step("the desk's acceptance reaching the village", 30, [("village", wang), ("desk", li)]) {
            for try await status in village.live({ try await $0.referralStatus(referralId: referral) })
            where status == .accepted {
                return status
            }
            throw CancellationError()
        }
        XCTAssertEqual(status, .accepted)
        try await wang.stopSync()
        try await li.stopSync()
    }

    func testTheSyncStatusStreamGoesFromPendingToSyncedAfterAnEdit() async throws {
        let wang = try await Yilian.open(folder: tempFolder(), key: nil)
        _ = try await wang.enroll(try syncConfig("sw-wang-2"), code: try env("YILIAN_CODE_C"))
        let patient = try await wang.store.createPatient(patient: resident("吴奶奶"))
        try wang.startSync(try syncConfig("sw-wang-2"))
        try await wang.syncNow(timeout: 30)

        var statuses = wang.syncStatus().makeAsyncIterator()
        let first = await statuses.next()
        XCTAssertEqual(first?.synced, true)
        _ = try await wang.store.recordVisit(patientId: patient, visit: followUp(150, 95))
        var sawPending = false
        var sawSynced = false
        while let status = await statuses.next() {
            if status.unacknowledged > 0 && !status.synced { sawPending = true }
            if sawPending && status.synced {
                XCTAssertEqual(status.unacknowledged, 0)
                sawSynced = true
                break
            }
        }
        XCTAssertTrue(sawPending, "never saw the edit pending")
        XCTAssertTrue(sawSynced, "never saw the edit synced")
        try await wang.stopSync()
    }
}
