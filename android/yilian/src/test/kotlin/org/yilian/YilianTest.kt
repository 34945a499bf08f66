package org.yilian

import java.io.File
import java.nio.file.Files
import java.time.LocalDate
import kotlin.system.exitProcess
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.yilian.ffi.Adherence
import org.yilian.ffi.CareException
import org.yilian.ffi.Demographics
import org.yilian.ffi.Direction
import org.yilian.ffi.Lifestyle
import org.yilian.ffi.Medicine
import org.yilian.ffi.NewContract
import org.yilian.ffi.NewPatient
import org.yilian.ffi.NewReferral
import org.yilian.ffi.NewReferralEvent
import org.yilian.ffi.NewVisit
import org.yilian.ffi.Sex
import org.yilian.ffi.SyncConfig
import org.yilian.ffi.SyncException
import org.yilian.ffi.SyncStatus
import org.yilian.ffi.TaskStatus
import org.yilian.ffi.Urgency
import org.yilian.ffi.VisitKind
import org.yilian.ffi.Vitals
import org.yilian.ffi.panicInsideCall

// JVM tests of the Kotlin library against the real Rust library (libyilian_ffi.so through JNA)
// and, for sync, a real relay that scripts/test-android starts (YILIAN_RELAY, YILIAN_FINGERPRINT,
// YILIAN_CODE_A for dr-wang of the village clinic, YILIAN_CODE_B for dr-li of the county desk).

private val today: LocalDate = LocalDate.now()

private fun tempFolder(): File = Files.createTempDirectory("yilian-kt").toFile().also { it.deleteOnExit() }

private fun resident(name: String) = NewPatient(
    demographics = Demographics(name, Sex.FEMALE, "1952-03-14", null, null, null, "石桥村"),
    practitionerId = "dr-wang",
    organizationId = "shiqiao",
)

private fun followUp(systolic: Int, diastolic: Int) = NewVisit(
    at = System.currentTimeMillis(),
    organizationId = "shiqiao",
    practitionerId = "dr-wang",
    kind = VisitKind.FOLLOW_UP,
    vitals = Vitals(systolicMmhg = systolic.toUShort(), diastolicMmhg = diastolic.toUShort()),
    symptoms = listOf("头晕"),
    diagnoses = listOf("I10"),
    medicines = listOf(Medicine("氨氯地平", "5 mg", "qd", Adherence.REGULAR)),
    lifestyle = Lifestyle(),
    notes = "",
)

private fun env(name: String): String =
    System.getenv(name)?.takeIf { it.isNotBlank() } ?: error("$name is not set: run scripts/test-android")

private fun syncConfig(device: String) = SyncConfig(env("YILIAN_RELAY"), env("YILIAN_FINGERPRINT"), device)

private val tests = linkedMapOf<String, suspend () -> Unit>(
    "a store in a temp folder keeps the visits recorded, across a reopen" to {
        val folder = tempFolder()
        val patient = Yilian.open(folder, null).use { yilian ->
            val p = yilian.store.createPatient(resident("王秀英"))
            yilian.store.recordVisit(p, followUp(152, 94))
            yilian.store.recordVisit(p, followUp(138, 86))
            p
        }
        Yilian.open(folder, null).use { yilian ->
            val visits = yilian.store.visits(patient)
            assertEquals(listOf(152, 138), visits.map { it.vitals.systolicMmhg?.toInt() })
            assertEquals("氨氯地平", visits[0].medicines.single().medicine.name)
            assertEquals("王秀英", yilian.store.patient(patient).patient.demographics.name)
            assertEquals(LocalDate.of(1952, 3, 14), yilian.store.patient(patient).patient.birthDate)
        }
    },
    "an encrypted store opens only with its key" to {
        val folder = tempFolder()
        val key = ByteArray(32) { it.toByte() }
        Yilian.open(folder, key).use { it.store.createPatient(resident("李桂兰")) }
        val wrong = ByteArray(32) { 7 }
        assertFailsWith<CareException.WrongKey> { Yilian.open(folder, wrong) }
        Yilian.open(folder, key).use { assertEquals(1, it.store.patientIds().size) }
    },
    "an out-of-range vital is a typed exception naming the field, and nothing is stored" to {
        Yilian.open(tempFolder(), null).use { yilian ->
            val p = yilian.store.createPatient(resident("赵建国"))
            val e = assertFailsWith<CareException.Validation> { yilian.store.recordVisit(p, followUp(400, 90)) }
            assertEquals("visit.vitals.systolic_mmhg", e.field)
            assertTrue(e.reason.contains("400"), e.reason)
            assertEquals(0, yilian.store.visits(p).size)
            val bad = assertFailsWith<CareException.Validation> { yilian.store.visits("not-a-uuid") }
            assertEquals("patient_id", bad.field)
        }
    },
    "a referral step the workflow forbids is a Transition exception" to {
        Yilian.open(tempFolder(), null).use { yilian ->
            val p = yilian.store.createPatient(resident("孙丽"))
            val r = yilian.store.createReferral(p, upward())
            yilian.store.addReferralEvent(r, NewReferralEvent(TaskStatus.REJECTED, "dr-li", "county", "no beds", null))
            val e = assertFailsWith<CareException.Transition> {
                yilian.store.addReferralEvent(r, NewReferralEvent(TaskStatus.ACCEPTED, "dr-li", "county", "", null))
            }
            assertEquals("rejected", e.from)
            assertEquals(TaskStatus.REJECTED, yilian.store.referralStatus(r))
        }
    },
    "a panic inside a Rust call comes back as CareException.Internal and the store keeps working" to {
        Yilian.open(tempFolder(), null).use { yilian ->
            val e = assertFailsWith<CareException.Internal> { panicInsideCall("deliberate test panic") }
            assertTrue(e.reason.contains("deliberate test panic"), e.reason)
            val p = yilian.store.createPatient(resident("钱芳"))
            assertEquals("钱芳", yilian.store.patient(p).patient.demographics.name)
        }
    },
    "calls from many coroutines at once are safe" to {
        Yilian.open(tempFolder(), null).use { yilian ->
            val patients = (1..4).map { yilian.store.createPatient(resident("居民$it")) }
            coroutineScope {
                (0 until 16).map { worker ->
                    async(Dispatchers.Default) {
                        val p = patients[worker % patients.size]
                        repeat(5) { yilian.store.recordVisit(p, followUp(120 + worker, 80)) }
                        yilian.store.visits(p).size
                    }
                }.awaitAll()
            }
            assertEquals(List(4) { 20 }, patients.map { yilian.store.visits(it).size })
            assertEquals(80, patients.flatMap { yilian.store.visits(it) }.map { it.id }.toSet().size)
        }
    },
    "a referral made on the village phone reaches the county desk's phone through a real relay" to {
        Yilian.open(tempFolder(), null).use { wang ->
            Yilian.open(tempFolder(), null).use { li ->
                val refused = assertFailsWith<SyncException.Unauthorized> {
                    li.enroll(syncConfig("kt-li"), "0000-0000-0000-0000-0000")
                }
                assertTrue(refused.reason.contains("code"), refused.reason)
                assertEquals("dr-wang", wang.enroll(syncConfig("kt-wang"), env("YILIAN_CODE_A")).practitionerId)
                assertEquals("county", li.enroll(syncConfig("kt-li"), env("YILIAN_CODE_B")).organizationId)

                val p = wang.store.createPatient(resident("周大爷"))
                wang.store.signContract(p, NewContract("team-shiqiao", "dr-wang", "shiqiao",
                    today.minusDays(30).toYilian(), today.plusDays(335).toYilian()))
                wang.store.recordVisit(p, followUp(186, 112))
                val r = wang.store.createReferral(p, upward())
                wang.startSync(syncConfig("kt-wang"))
                assertTrue(wang.syncNow(30.seconds).synced)

                li.startSync(syncConfig("kt-li"))
                assertTrue(li.syncNow(30.seconds).synced)
                val arrived = step("the referral reaches the desk's worklist", "wang" to wang, "li" to li) {
                    li.store.live { openReferrals("county") }.first { list -> list.any { it.referralId == r } }
                }
                assertEquals("周大爷", arrived.single { it.referralId == r }.patientName)
                li.store.addReferralEvent(r, NewReferralEvent(TaskStatus.RECEIVED, "dr-li", "county", "", null))
                li.store.addReferralEvent(r, NewReferralEvent(TaskStatus.ACCEPTED, "dr-li", "county", "bed 12", null))

                // The desk's acceptance flows back to the village phone (live session, no polling).
                step("the acceptance reaches the village phone", "wang" to wang, "li" to li) {
                    wang.store.live { referralStatus(r) }.first { it == TaskStatus.ACCEPTED }
                }
                wang.stopSync()
                li.stopSync()
            }
        }
    },
    "the sync status flow goes from pending to synced after an edit" to {
        Yilian.open(tempFolder(), null).use { wang ->
            wang.enroll(syncConfig("kt-wang-2"), env("YILIAN_CODE_C"))
            val p = wang.store.createPatient(resident("吴奶奶"))
            wang.startSync(syncConfig("kt-wang-2"))
            wang.syncNow(30.seconds)
            val statuses = Channel<SyncStatus>(Channel.UNLIMITED)
            coroutineScope {
                val collector = launch { wang.syncStatus().collect { statuses.send(it) } }
                assertTrue(statuses.receive().synced, "synced before the edit")
                wang.store.recordVisit(p, followUp(150, 95))
                withTimeout(30.seconds) {
                    var s = statuses.receive()
                    while (!(s.unacknowledged > 0uL && !s.synced)) s = statuses.receive()
                    while (!s.synced) s = statuses.receive()
                    assertEquals(0uL, s.unacknowledged)
                }
                collector.cancel()
            }
            wang.stopSync()
        }
    },
)

/** Runs [block] for up to 30 s; on timeout the failure names the step and each phone's sync status. */
private suspend fun <T> step(what: String, vararg phones: Pair<String, Yilian>, block: suspend () -> T): T = try {
    withTimeout(30.seconds) { block() }
} catch (e: TimeoutCancellationException) {
    val states = phones.joinToString("; ") { (name, phone) -> "$name: ${phone.syncAgent?.status()}" }
    throw AssertionError("timed out after 30 s: $what ($states)", e)
}

private fun upward() = NewReferral(
    direction = Direction.UPWARD,
    fromOrganizationId = "shiqiao",
    fromPractitionerId = "dr-wang",
    toOrganizationId = "county",
    reason = "血压控制不佳，两次随访 >180/110",
    urgency = Urgency.URGENT,
    clinicalSummary = "高血压 10 年，氨氯地平 5 mg qd",
    inResponseTo = null,
)

fun main() {
    var passed = 0
    var failed = 0
    runBlocking {
        for ((name, test) in tests) {
            try {
                withTimeout(120.seconds) { test() }
                passed++
                println("ok   $name")
            } catch (e: Throwable) {
                failed++
                println("FAIL $name: $e")
                e.printStackTrace()
            }
        }
    }
    println("kotlin: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
