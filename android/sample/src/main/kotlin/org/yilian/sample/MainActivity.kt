package org.yilian.sample

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.material3.TopAppBar
import androidx.compose.runtime.Composable
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import java.time.LocalDate
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.flowOn
import kotlinx.coroutines.launch
import org.yilian.Yilian
import org.yilian.android.YilianAndroid
import org.yilian.dueDate
import org.yilian.live
import org.yilian.ffi.CareException
import org.yilian.ffi.Direction
import org.yilian.ffi.DueFollowUp
import org.yilian.ffi.Lifestyle
import org.yilian.ffi.NewReferral
import org.yilian.ffi.NewVisit
import org.yilian.ffi.SyncState
import org.yilian.ffi.SyncStatus
import org.yilian.ffi.Urgency
import org.yilian.ffi.VisitKind
import org.yilian.ffi.Vitals
import org.yilian.toYilian

/** The signed-in doctor (a real app reads these from its enrollment). */
private const val DOCTOR = "dr-wang"
private const val CLINIC = "shiqiao"
private const val COUNTY = "county"

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val yilian = YilianAndroid.get(this)
        setContent { MaterialTheme { DoctorsDay(yilian) } }
    }
}

@Composable
private fun DoctorsDay(yilian: Yilian) {
    var selected by remember { mutableStateOf<DueFollowUp?>(null) }
    Scaffold(topBar = { TopAppBar(title = { Text("今日随访 · Today's follow-ups") }) }) { padding ->
        Column(Modifier.padding(padding).padding(16.dp), verticalArrangement = Arrangement.spacedBy(12.dp)) {
            SyncBar(yilian)
            val current = selected
            if (current == null) {
                DueList(yilian) { selected = it }
            } else {
                VisitForm(yilian, current) { selected = null }
            }
        }
    }
}

@Composable
private fun SyncBar(yilian: Yilian) {
    val status by remember { yilian.syncStatus() }.collectAsState(initial = null)
    val text = when (val s: SyncStatus? = status) {
        null -> "Not enrolled: ask the consortium for an enrollment code"
        else -> when {
            s.synced -> "Synced" + (s.lastSyncedAt?.let { " · ${java.time.Instant.ofEpochMilli(it)}" } ?: "")
            s.state == SyncState.WAITING -> "Offline · ${s.unacknowledged} edits pending" +
                (s.lastError?.let { " · $it" } ?: "")
            else -> "Syncing · ${s.itemsDone}/${s.itemsTotal}"
        }
    }
    Text(text, style = MaterialTheme.typography.labelLarge)
}

@Composable
private fun DueList(yilian: Yilian, onOpen: (DueFollowUp) -> Unit) {
    val today = LocalDate.now()
    // Re-queried whenever a record changes: an edit here or a change synced from the relay.
    val due by remember {
        yilian.store.live { dueFollowUps(DOCTOR, today.toYilian()) }.flowOn(Dispatchers.IO)
    }.collectAsState(initial = emptyList())
    LazyColumn(verticalArrangement = Arrangement.spacedBy(8.dp)) {
        items(due, key = { it.patientId }) { line ->
            Card(onClick = { onOpen(line) }) {
                Column(Modifier.padding(12.dp)) {
                    Text(line.name, style = MaterialTheme.typography.titleMedium)
                    Text("Due ${line.dueDate}" + if (line.daysOverdue > 0) " · ${line.daysOverdue} days overdue" else "")
                    line.reasons.forEach { Text("· ${it.description}", style = MaterialTheme.typography.bodySmall) }
                }
            }
        }
    }
}

@Composable
private fun VisitForm(yilian: Yilian, line: DueFollowUp, onDone: () -> Unit) {
    val scope = rememberCoroutineScope()
    var systolic by remember { mutableStateOf("") }
    var diastolic by remember { mutableStateOf("") }
    var glucose by remember { mutableStateOf("") }
    var notes by remember { mutableStateOf("") }
    var problem by remember { mutableStateOf<Pair<String, String>?>(null) }
    var message by remember { mutableStateOf("") }

    fun errorFor(field: String) = problem?.takeIf { it.first == field }?.second

    Column(Modifier.fillMaxSize(), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        Text(line.name, style = MaterialTheme.typography.headlineSmall)
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            OutlinedTextField(systolic, { systolic = it }, label = { Text("收缩压 mmHg") },
                isError = errorFor("visit.vitals.systolic_mmhg") != null,
                supportingText = { errorFor("visit.vitals.systolic_mmhg")?.let { Text(it) } },
                modifier = Modifier.weight(1f))
            OutlinedTextField(diastolic, { diastolic = it }, label = { Text("舒张压 mmHg") },
                isError = errorFor("visit.vitals.diastolic_mmhg") != null,
                supportingText = { errorFor("visit.vitals.diastolic_mmhg")?.let { Text(it) } },
                modifier = Modifier.weight(1f))
        }
        OutlinedTextField(glucose, { glucose = it }, label = { Text("空腹血糖 mmol/L") },
            isError = errorFor("visit.vitals.fasting_glucose_mmol_l") != null,
            supportingText = { errorFor("visit.vitals.fasting_glucose_mmol_l")?.let { Text(it) } })
        OutlinedTextField(notes, { notes = it }, label = { Text("Notes") })
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(onClick = {
                scope.launch {
                    try {
                        yilian.store.recordVisit(line.patientId, NewVisit(
                            at = System.currentTimeMillis(), organizationId = CLINIC, practitionerId = DOCTOR,
                            kind = VisitKind.FOLLOW_UP,
                            vitals = Vitals(
                                systolicMmhg = systolic.toUShortOrNull(), diastolicMmhg = diastolic.toUShortOrNull(),
                                fastingGlucoseMmolL = glucose.toDoubleOrNull(),
                            ),
                            symptoms = emptyList(), diagnoses = emptyList(), medicines = emptyList(),
                            lifestyle = Lifestyle(), notes = notes,
                        ))
                        onDone()
                    } catch (e: CareException.Validation) {
                        problem = e.field to e.reason
                    }
                }
            }) { Text("Save visit") }
            Button(onClick = {
                scope.launch {
                    try {
                        yilian.store.createReferral(line.patientId, NewReferral(
                            direction = Direction.UPWARD, fromOrganizationId = CLINIC, fromPractitionerId = DOCTOR,
                            toOrganizationId = COUNTY, reason = notes.ifBlank { "血压控制不佳" },
                            urgency = Urgency.URGENT, clinicalSummary = "BP $systolic/$diastolic", inResponseTo = null,
                        ))
                        message = "Referral to the county hospital saved; it leaves with the next sync."
                    } catch (e: CareException.Validation) {
                        problem = e.field to e.reason
                    }
                }
            }) { Text("Refer up") }
            Button(onClick = onDone) { Text("Back") }
        }
        if (message.isNotEmpty()) Text(message)
    }
}
