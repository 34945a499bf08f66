package org.yilian

import java.io.File
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.first
import org.yilian.ffi.Enrollment
import org.yilian.ffi.SyncConfig
import org.yilian.ffi.SyncStatus
import org.yilian.ffi.YilianStore
import org.yilian.ffi.YilianSyncAgent
import org.yilian.ffi.enroll as enrollDevice

/**
 * Yilian on a phone: the doctor's records ([store], the whole care API as suspend functions)
 * and, once enrolled, the sync agent that keeps them in step with the consortium's relay.
 *
 * Plain Kotlin (no Android classes), so it runs in JVM tests; the Android glue
 * (`org.yilian.android`) only feeds it a Keystore-held key, connectivity and WorkManager.
 */
class Yilian private constructor(
    /** The records and the care API. */
    val store: YilianStore,
) : AutoCloseable {
    private var agent: YilianSyncAgent? = null

    companion object {
        /** File name of the store inside the app's folder. */
        const val DATABASE = "yilian.db"

        /**
         * Opens (creating if needed) the store in [folder], encrypted with [key] (32 bytes, from
         * the Keystore) or plain when null.
         */
        suspend fun open(folder: File, key: ByteArray?): Yilian {
            folder.mkdirs()
            return Yilian(YilianStore.open(File(folder, DATABASE).path, key))
        }
    }

    /** Enrolls this phone with the relay of [config] using the administrator's one-time [code]. */
    suspend fun enroll(config: SyncConfig, code: String): Enrollment = enrollDevice(store, config, code)

    /** Starts syncing with the relay of [config] (once enrolled); the running agent. */
    @Synchronized
    fun startSync(config: SyncConfig): YilianSyncAgent =
        agent ?: YilianSyncAgent.start(store, config).also { agent = it }

    /** The running agent, if sync was started. */
    val syncAgent: YilianSyncAgent? @Synchronized get() = agent

    /** The sync status as a flow (nothing until [startSync]). */
    fun syncStatus(): Flow<SyncStatus> =
        syncAgent?.statusFlow() ?: kotlinx.coroutines.flow.emptyFlow()

    /** Syncs now and waits until synced, or throws `SyncException` after [timeout]. */
    suspend fun syncNow(timeout: Duration = 60.seconds): SyncStatus {
        val running = syncAgent ?: throw IllegalStateException("sync is not started")
        return running.syncNow(timeout.inWholeMilliseconds.toULong())
    }

    /** Suspends until the agent reports this phone synced. */
    suspend fun awaitSynced(): SyncStatus = syncStatus().first { it.synced }

    /** Stops the agent (ending its session cleanly). */
    suspend fun stopSync() {
        val running = synchronized(this) { agent.also { agent = null } } ?: return
        running.stop()
        running.close()
    }

    /** Releases the store and the agent (the agent is stopped without waiting). */
    override fun close() {
        synchronized(this) { agent?.close(); agent = null }
        store.close()
    }
}
