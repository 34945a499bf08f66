package org.yilian.android

import android.content.Context
import java.io.File
import kotlinx.coroutines.runBlocking
import org.yilian.Yilian
import org.yilian.ffi.SyncConfig

/**
 * The process's one [Yilian]: the store in the app's private files, encrypted with the
 * Keystore-held key, and (once enrolled) its sync agent with the connectivity hint and the
 * periodic WorkManager sync. The app's screens and the worker share it.
 */
object YilianAndroid {
    private const val PREFS = "yilian"
    @Volatile private var instance: Yilian? = null
    private var connectivity: ConnectivityHint? = null

    /** The shared instance, opened on first use (off the main thread, please: it opens SQLite). */
    fun get(context: Context): Yilian = instance ?: synchronized(this) {
        instance ?: open(context.applicationContext).also { instance = it }
    }

    private fun open(context: Context): Yilian {
        val yilian = runBlocking { Yilian.open(File(context.filesDir, "yilian"), KeystoreKey.storeKey(context)) }
        savedConfig(context)?.let { startSync(context, yilian, it) }
        return yilian
    }

    /** Enrolls with the administrator's one-time [code], remembers [config], and starts syncing. */
    suspend fun enroll(context: Context, config: SyncConfig, code: String) {
        val yilian = get(context)
        yilian.enroll(config, code)
        context.getSharedPreferences(PREFS, Context.MODE_PRIVATE).edit()
            .putString("relay", config.relay)
            .putString("fingerprint", config.fingerprint)
            .putString("device", config.deviceId)
            .apply()
        startSync(context, yilian, config)
    }

    private fun savedConfig(context: Context): SyncConfig? {
        val prefs = context.getSharedPreferences(PREFS, Context.MODE_PRIVATE)
        val relay = prefs.getString("relay", null) ?: return null
        val fingerprint = prefs.getString("fingerprint", null) ?: return null
        val device = prefs.getString("device", null) ?: return null
        return SyncConfig(relay, fingerprint, device)
    }

    private fun startSync(context: Context, yilian: Yilian, config: SyncConfig) {
        val agent = yilian.startSync(config)
        synchronized(this) {
            if (connectivity == null) connectivity = ConnectivityHint(context, agent)
        }
        SyncWorker.schedule(context)
    }
}
