package org.yilian.android

import android.content.Context
import android.net.ConnectivityManager
import android.net.Network
import org.yilian.ffi.YilianSyncAgent

/**
 * Feeds Android's connectivity callbacks to the agent's network hint: a network appearing makes
 * it sync at once (and move a live connection to the new network); losing one stops retries
 * until the next hint or timer. Call [unregister] when the agent stops.
 */
class ConnectivityHint(context: Context, private val agent: YilianSyncAgent) {
    private val manager = context.getSystemService(ConnectivityManager::class.java)
    private val callback = object : ConnectivityManager.NetworkCallback() {
        override fun onAvailable(network: Network) {
            runCatching { agent.networkChanged(true) }
        }

        override fun onLost(network: Network) {
            val stillOnline = manager.activeNetwork != null
            runCatching { agent.networkChanged(stillOnline) }
        }
    }

    init {
        manager.registerDefaultNetworkCallback(callback)
    }

    /** Stops listening. */
    fun unregister() {
        manager.unregisterNetworkCallback(callback)
    }
}
