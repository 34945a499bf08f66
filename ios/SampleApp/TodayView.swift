import SwiftUI
import Yilian

/// Today's due follow-ups, the sync status, and a visit form with a referral button.
struct TodayView: View {
    @EnvironmentObject var model: DoctorModel

    var body: some View {
        NavigationStack {
            List {
                Section { SyncLine(status: model.status) }
                Section("今日随访 · Due today") {
                    ForEach(model.due, id: \.patientId) { line in
                        NavigationLink(value: line.patientId) {
                            VStack(alignment: .leading) {
                                Text(line.name).font(.headline)
                                Text(line.daysOverdue > 0 ? "\(line.daysOverdue) days overdue" : "Due today")
                                ForEach(line.reasons, id: \.description) { Text("· \($0.description)").font(.caption) }
                            }
                        }
                    }
                }
            }
            .navigationTitle("Yilian")
            .navigationDestination(for: String.self) { VisitForm(patientId: $0) }
        }
    }
}

struct SyncLine: View {
    let status: SyncStatus?
    var body: some View {
        if let s = status {
            if s.synced {
                Label("Synced", systemImage: "checkmark.icloud")
            } else if s.state == .waiting {
                Label("Offline · \(s.unacknowledged) edits pending", systemImage: "icloud.slash")
            } else {
                Label("Syncing \(s.itemsDone)/\(s.itemsTotal)", systemImage: "arrow.triangle.2.circlepath.icloud")
            }
        } else {
            Label("Not enrolled", systemImage: "person.badge.key")
        }
    }
}

/// Records a visit with vitals; a refused value is shown under the field the library names.
struct VisitForm: View {
    @EnvironmentObject var model: DoctorModel
    @Environment(\.dismiss) private var dismiss
    let patientId: String
    @State private var systolic = ""
    @State private var diastolic = ""
    @State private var glucose = ""
    @State private var problem: (field: String, reason: String)?
    @State private var note = ""

    var body: some View {
        Form {
            field("收缩压 mmHg", $systolic, "visit.vitals.systolic_mmhg")
            field("舒张压 mmHg", $diastolic, "visit.vitals.diastolic_mmhg")
            field("空腹血糖 mmol/L", $glucose, "visit.vitals.fasting_glucose_mmol_l")
            Button("Save visit") { Task { await save() } }
            Button("Refer up to the county hospital") { Task { await refer() } }
            if !note.isEmpty { Text(note) }
        }
    }

    @ViewBuilder
    private func field(_ label: String, _ text: Binding<String>, _ name: String) -> some View {
        TextField(label, text: text).keyboardType(.decimalPad)
        if let problem, problem.field == name { Text(problem.reason).foregroundStyle(.red) }
    }

    private func save() async {
        guard let store = model.yilian?.store else { return }
        let visit = NewVisit(
            at: Date().yilianMillis, organizationId: DoctorModel.clinic, practitionerId: DoctorModel.doctor,
            kind: .followUp,
            vitals: Vitals(systolicMmhg: UInt16(systolic), diastolicMmhg: UInt16(diastolic),
                           fastingGlucoseMmolL: Double(glucose)),
            symptoms: [], diagnoses: [], medicines: [], lifestyle: Lifestyle(), notes: "")
        do {
            _ = try await store.recordVisit(patientId: patientId, visit: visit)
            dismiss()
        } catch CareError.Validation(let field, let reason) {
            problem = (field, reason)
        } catch {
            note = error.localizedDescription
        }
    }

    private func refer() async {
        guard let store = model.yilian?.store else { return }
        do {
            _ = try await store.createReferral(patientId: patientId, referral: NewReferral(
                direction: .upward, fromOrganizationId: DoctorModel.clinic, fromPractitionerId: DoctorModel.doctor,
                toOrganizationId: "county", reason: "血压控制不佳", urgency: .urgent,
                clinicalSummary: "BP \(systolic)/\(diastolic)", inResponseTo: nil))
            note = "Referral saved; it leaves with the next sync."
        } catch {
            note = error.localizedDescription
        }
    }
}
