package org.yilian.android

import android.content.Context
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.NetworkType
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.minutes
import org.yilian.ffi.SyncException

/**
 * WorkManager's periodic sync for when the app is in the background: Android runs it when a
 * network is available, at most every 15 minutes; it syncs once and reports success, or asks to
 * be retried later when the relay was unreachable.
 */
class SyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result {
        val yilian = YilianAndroid.get(applicationContext)
        val agent = yilian.syncAgent ?: return Result.success() // not enrolled yet
        return try {
            agent.syncNow(5.minutes.inWholeMilliseconds.toULong())
            Result.success()
        } catch (e: SyncException.Network) {
            Result.retry()
        } catch (e: SyncException) {
            Result.failure()
        }
    }

    companion object {
        private const val NAME = "yilian-periodic-sync"

        /** Schedules the periodic sync (idempotent: call at every app start). */
        fun schedule(context: Context) {
            val request = PeriodicWorkRequestBuilder<SyncWorker>(15, TimeUnit.MINUTES)
                .setConstraints(Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build())
                .build()
            WorkManager.getInstance(context).enqueueUniquePeriodicWork(NAME, ExistingPeriodicWorkPolicy.KEEP, request)
        }
    }
}
