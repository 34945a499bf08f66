package org.yilian

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.conflate
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.map
import org.yilian.ffi.RecordsObserver
import org.yilian.ffi.SyncObserver
import org.yilian.ffi.SyncStatus
import org.yilian.ffi.YilianStore
import org.yilian.ffi.YilianSyncAgent

/** Records changed on this phone: [patientIds] has new changes (empty: records left the phone). */
data class RecordsChange(val patientIds: List<String>, val localEdit: Boolean)

/**
 * The agent's status as a cold [Flow]: the current status first, then every change, none
 * dropped (a test or a log sees "pending" before "synced"; a screen may `conflate()`).
 * Collecting registers an observer with the Rust agent; cancelling the collector unregisters it.
 */
fun YilianSyncAgent.statusFlow(): Flow<SyncStatus> = callbackFlow {
    val handle = observe(object : SyncObserver {
        override fun onStatus(status: SyncStatus) {
            trySend(status)
        }
    })
    awaitClose { handle.close() }
}.buffer(Channel.UNLIMITED).distinctUntilChanged()

/**
 * Record changes as a cold [Flow] (edits here, changes from the relay, records leaving the
 * phone's scope), for screens that refresh what they show. Buffered, so no change is dropped.
 */
fun YilianStore.recordChanges(): Flow<RecordsChange> = callbackFlow {
    val handle = observeRecords(object : RecordsObserver {
        override fun onRecordsChanged(patientIds: List<String>, localEdit: Boolean) {
            trySend(RecordsChange(patientIds, localEdit))
        }
    })
    awaitClose { handle.close() }
}.buffer(Channel.UNLIMITED)

/**
 * A query kept up to date, as Room's flows are: runs [query] now and again after every change
 * of the records, e.g. `store.live { dueFollowUps("dr-wang", today) }` for a due-list screen.
 * Registered before the first run, so no change between the two is missed.
 */
fun <T> YilianStore.live(query: suspend YilianStore.() -> T): Flow<T> = callbackFlow {
    val handle = observeRecords(object : RecordsObserver {
        override fun onRecordsChanged(patientIds: List<String>, localEdit: Boolean) {
            trySend(Unit)
        }
    })
    trySend(Unit)
    awaitClose { handle.close() }
}.conflate().map { query() }
