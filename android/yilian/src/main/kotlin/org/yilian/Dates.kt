package org.yilian

import java.time.Instant
import java.time.LocalDate
import org.yilian.ffi.Condition
import org.yilian.ffi.Contract
import org.yilian.ffi.DueFollowUp
import org.yilian.ffi.Patient
import org.yilian.ffi.ReferralEvent
import org.yilian.ffi.Visit

// The bindings carry days as ISO `YYYY-MM-DD` strings and instants as epoch milliseconds (one
// encoding for Kotlin and Swift alike); these give them their java.time types.

/** The `YYYY-MM-DD` form the Yilian API takes for a day. */
fun LocalDate.toYilian(): String = toString()

/** Epoch milliseconds, as the Yilian API takes an instant. */
fun Instant.toYilian(): Long = toEpochMilli()

/** When the visit took place. */
val Visit.time: Instant get() = Instant.ofEpochMilli(at)

/** Day the follow-up is due. */
val DueFollowUp.dueDate: LocalDate get() = LocalDate.parse(due)

/** Date of birth. */
val Patient.birthDate: LocalDate get() = LocalDate.parse(demographics.birthDate)

/** Day of diagnosis. */
val Condition.diagnosedOnDate: LocalDate get() = LocalDate.parse(diagnosedOn)

/** First and last day of the contract. */
val Contract.period: ClosedRange<LocalDate> get() = LocalDate.parse(start)..LocalDate.parse(end)

/** When the referral step was taken. */
val ReferralEvent.time: Instant get() = Instant.ofEpochMilli(at)
