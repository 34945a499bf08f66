#!/usr/bin/env node
// automerge-repo side of Yilian's side-by-side sync benchmark.
//
// One script, four subcommands (run from anywhere; dependencies resolve from
// tests/js/node_modules, so run `npm ci` in tests/js first):
//
//   node peer.mjs seed   --storage DIR --documents documents.bin --state state.json
//       Offline. Imports every document of documents.bin into a Repo backed by
//       NodeFSStorageAdapter(DIR) (the server's storage), flushes it to disk and
//       writes state.json = {"ids": [documentId per index], "heads": [[hex heads]...]}.
//       Prints `SEEDED {"documents":N,...}`. With --ids-from OTHER_STATE.json the documents
//       keep the ids OTHER_STATE gave them (a client seeded with what the server holds).
//
//   node peer.mjs apply  --storage DIR --day day.bin --state state.json
//       Offline (the server must not be running on DIR). Loads each record's
//       document from DIR, applies the raw change bytes with
//       Automerge.loadIncremental through DocHandle.update, flushes, and rewrites
//       state.json with the new heads. Prints `APPLIED {"records":R,...}`.
//
//   node peer.mjs serve  --storage DIR --host H --port P
//       The sync server, set up as @automerge/automerge-repo-sync-server does it:
//       an HTTP server whose "upgrade" requests go to a `ws` WebSocketServer
//       ({noServer: true}) wrapped in WebSocketServerAdapter (a.k.a.
//       NodeWSServerAdapter) with its default keep-alive (5000 ms), a
//       NodeFSStorageAdapter, peerId `storage-server-<hostname>` and
//       `sharePolicy: async () => false` (never announces documents; it only
//       syncs documents a client asks for by id). Port 0 picks a free port.
//       Prints `READY <port>` once listening; SIGTERM/SIGINT closes the
//       connections, flushes storage and exits 0.
//
//   node peer.mjs client --url ws://H:P --storage DIR --state state.json --cap SECONDS
//       A client Repo: WebSocketClientAdapter(url) with its default retry
//       interval (5000 ms), NodeFSStorageAdapter(DIR) (kept between runs: an
//       empty DIR gives a first full sync, a synced DIR an idle or incremental
//       sync), default share policy. The clock starts right before the Repo
//       (and so the first connection attempt) is created. After the first
//       join/peer handshake it calls repo.find() for every id of state.json at
//       once and waits until every document (a) has the heads listed in
//       state.json and (b) has received at least one "sync" message from the
//       server during this run. Gives up at --cap seconds (default 600).
//       Prints exactly one line `RESULT {json}` on stdout (everything else goes
//       to stderr), flushes storage and exits 0, also when the cap was hit.
//       Exits non-zero only on real errors (bad input, unexpected exception).
//
// RESULT fields (client):
//   complete, seconds (until complete, or elapsed at the cap), documents (N),
//   documents_done (expected heads + a server sync message this run),
//   messages_sent / messages_received (repo messages -- sync/request/
//     doc-unavailable/... -- counted at the network adapter; the websocket
//     join/peer handshake is not included), app_bytes_sent / app_bytes_received
//     (sum of those messages' `data` byte lengths, i.e. Automerge sync message
//     bytes), turns (times a repo message was received after the client had sent
//     one since the previous receive), reconnects (websocket opens - 1, never < 0),
//   peak_rss_mb (process.resourceUsage().maxRSS / 1024), progress_per_second
//     (documents_done / seconds),
//   and extras: handshake_seconds, first_receive_seconds / last_receive_seconds
//     (first and latest repo message from the server), connections, disconnects, ws_frames_sent/
//     received and ws_bytes_sent/received (CBOR frames incl. handshake),
//     tcp_bytes_sent/received (all bytes of all TCP connections incl. the HTTP
//     upgrade and websocket framing), by_type_sent/by_type_received,
//     docs_at_expected_heads, docs_with_server_message, find_failures (repo.find
//     rejections, e.g. the DocHandle's 60 s "unavailable" timeout on slow links;
//     syncing goes on regardless), adapter_errors (network errors the websocket
//     adapter let escape as exceptions, see below), cap_seconds.
//
// Known behaviour of automerge-repo 2.5 this script works around (see the report):
//   * WebSocketClientAdapter#onError re-throws every error except ECONNREFUSED,
//     and sockets it abandons on retry have no "error" listener at all, so a
//     refused/reset/timed-out connection attempt surfaces as an uncaught
//     exception. The client counts such network errors (adapter_errors) and
//     keeps running; the adapter's own retry timer reconnects.
//   * Repo.flush() throws for handles that are not ready, so only ready handles
//     are flushed.

import fs from "node:fs"
import http from "node:http"
import os from "node:os"
import * as A from "@automerge/automerge"
import { Repo, generateAutomergeUrl, parseAutomergeUrl } from "@automerge/automerge-repo"
import { WebSocketClientAdapter, WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { WebSocketServer } from "ws"
import {
  parseArgs, readDay, readDocuments, readState, writeState, sameHeads, normHeads, sleep,
} from "./lib.mjs"

const log = (...args) => console.error(...args)

// Network errors that may escape from the websocket adapters as exceptions.
const NET_CODES = new Set([
  "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH",
  "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ENETRESET", "EAI_AGAIN", "ENOTFOUND",
  "EADDRNOTAVAIL", "ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END",
])
const NET_MESSAGES = /socket hang up|Websocket not ready|Opening handshake has timed out|Unexpected server response|closed before the connection was established|Invalid WebSocket frame|WebSocket is not open/i

function isNetworkError(e) {
  if (!e) return false
  if (NET_CODES.has(e.code)) return true
  if (e.code === "ERR_UNHANDLED_ERROR" && e.context) return isNetworkError(e.context)
  return NET_MESSAGES.test(String(e.message ?? e))
}

/** Exceptions from network I/O are counted and survived; anything else is fatal. */
function guardProcess(onNetworkError) {
  const handler = kind => err => {
    if (isNetworkError(err)) {
      onNetworkError(err)
      return
    }
    log(`FATAL ${kind}:`, err)
    process.exit(2)
  }
  process.on("uncaughtException", handler("uncaughtException"))
  process.on("unhandledRejection", handler("unhandledRejection"))
}

/**
 * Writes every ready document to storage. Waits first so the Repo's own
 * throttled saves (saveDebounceRate = 100 ms) have fired and do not race the
 * flush, and afterwards so throttled sync-state saves can finish.
 */
async function flushRepo(repo) {
  await sleep(250)
  const ready = Object.values(repo.handles).filter(h => h.isReady()).map(h => h.documentId)
  await repo.flush(ready)
  await sleep(250)
  return ready.length
}

function headsOf(handle) {
  return normHeads(A.getHeads(handle.doc()))
}

// ---------------------------------------------------------------- seed

async function cmdSeed(argv) {
  const o = parseArgs(argv, { required: ["storage", "documents", "state"] })
  const t0 = performance.now()
  const docs = readDocuments(o.documents)
  fs.mkdirSync(o.storage, { recursive: true })
  if (fs.readdirSync(o.storage).length > 0) {
    log(`warning: ${o.storage} is not empty; new documents are added next to what is there`)
  }
  const repo = new Repo({
    storage: new NodeFSStorageAdapter(o.storage),
    network: [],
    peerId: "seed",
    sharePolicy: async () => false,
  })
  await repo.storageId() // creates storage-adapter-id, as the server would
  // --ids-from STATE: give the documents the ids another storage already uses for them (a
  // client that holds the same documents as the server without having synced them).
  const reuse = o["ids-from"] ? readState(o["ids-from"]).ids : null
  if (reuse && reuse.length !== docs.length) {
    throw new Error(`${o["ids-from"]} has ${reuse.length} ids for ${docs.length} documents`)
  }
  const ids = []
  const heads = []
  let bytes = 0
  for (const [i, data] of docs.entries()) {
    const documentId = reuse ? reuse[i] : parseAutomergeUrl(generateAutomergeUrl()).documentId
    const handle = repo.import(data, { docId: documentId })
    if (!handle.isReady()) handle.doneLoading() // a document with no changes
    ids.push(documentId)
    heads.push(headsOf(handle))
    bytes += data.byteLength
  }
  const flushed = await flushRepo(repo)
  if (flushed !== docs.length) throw new Error(`flushed ${flushed} of ${docs.length} documents`)
  writeState(o.state, { ids, heads })
  const seconds = (performance.now() - t0) / 1000
  console.log(`SEEDED ${JSON.stringify({ documents: docs.length, bytes, seconds: round(seconds) })}`)
}

// ---------------------------------------------------------------- apply

async function cmdApply(argv) {
  const o = parseArgs(argv, { required: ["storage", "day", "state"] })
  const t0 = performance.now()
  const state = readState(o.state)
  const records = readDay(o.day)
  const repo = new Repo({
    storage: new NodeFSStorageAdapter(o.storage),
    network: [],
    peerId: "apply",
    sharePolicy: async () => false,
  })
  const touched = new Set()
  let bytes = 0
  for (const [i, { index, bytes: data }] of records.entries()) {
    if (index >= state.ids.length) {
      throw new Error(`day record ${i}: document index ${index} out of range (${state.ids.length} documents)`)
    }
    const handle = await repo.find(state.ids[index])
    handle.update(doc => A.loadIncremental(doc, data))
    touched.add(index)
    bytes += data.byteLength
  }
  await flushRepo(repo)
  let missingDeps = 0
  for (const index of touched) {
    const handle = repo.handles[state.ids[index]]
    state.heads[index] = headsOf(handle)
    missingDeps += A.getMissingDeps(handle.doc(), []).length
  }
  if (missingDeps > 0) log(`warning: ${missingDeps} missing dependencies after applying ${o.day}`)
  writeState(o.state, state)
  const seconds = (performance.now() - t0) / 1000
  console.log(`APPLIED ${JSON.stringify({ records: records.length, documents: touched.size, bytes, missing_deps: missingDeps, seconds: round(seconds) })}`)
}

// ---------------------------------------------------------------- serve

async function cmdServe(argv) {
  const o = parseArgs(argv, { required: ["storage"], defaults: { host: "127.0.0.1", port: "3030" } })
  fs.mkdirSync(o.storage, { recursive: true })
  const stats = { connections: 0, messages_received: 0, messages_sent: 0, app_bytes_received: 0, app_bytes_sent: 0, network_errors: 0 }
  guardProcess(err => {
    stats.network_errors++
    log(`server: network error survived: ${err.code ?? ""} ${err.message}`)
  })

  const wss = new WebSocketServer({ noServer: true })
  wss.on("connection", () => stats.connections++)
  const adapter = new WebSocketServerAdapter(wss) // default keepAliveInterval (5000 ms)
  const origSend = adapter.send.bind(adapter)
  adapter.send = message => {
    origSend(message)
    if (message.type !== "peer" && message.type !== "error") {
      stats.messages_sent++
      stats.app_bytes_sent += message.data?.byteLength ?? 0
    }
  }
  adapter.on("message", message => {
    stats.messages_received++
    stats.app_bytes_received += message.data?.byteLength ?? 0
  })

  const repo = new Repo({
    network: [adapter],
    storage: new NodeFSStorageAdapter(o.storage),
    peerId: `storage-server-${os.hostname()}`,
    // Like automerge-repo-sync-server: only sync documents a peer asks for by id.
    sharePolicy: async () => false,
  })

  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" })
    res.end("automerge-repo sync server is running\n")
  })
  server.on("upgrade", (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, ws => wss.emit("connection", ws, request))
  })

  let stopping = false
  const stop = async signal => {
    if (stopping) return
    stopping = true
    log(`server: ${signal}, shutting down`)
    try {
      adapter.disconnect() // terminates every client socket
      wss.close()
      server.close()
      await flushRepo(repo)
    } catch (e) {
      log("server: error while shutting down:", e)
      process.exit(1)
    }
    log(`SERVER_STATS ${JSON.stringify(stats)}`)
    process.exit(0)
  }
  process.on("SIGTERM", () => void stop("SIGTERM"))
  process.on("SIGINT", () => void stop("SIGINT"))

  await new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(Number(o.port), o.host, resolve)
  })
  console.log(`READY ${server.address().port}`)
}

// ---------------------------------------------------------------- client

async function cmdClient(argv) {
  const o = parseArgs(argv, { required: ["url", "storage", "state"], defaults: { cap: "600" } })
  const cap = Number(o.cap)
  if (!(cap > 0)) throw new Error(`--cap must be a positive number of seconds`)
  const state = readState(o.state)
  const ids = state.ids
  const N = ids.length
  const expected = new Map(ids.map((id, i) => [id, normHeads(state.heads[i])]))

  // Only the RESULT line goes to stdout; automerge-repo logs with console.log.
  const writeStdout = line => process.stdout.write(line + "\n")
  console.log = (...args) => console.error(...args)

  const s = {
    connections: 0, disconnects: 0, handshakes: 0,
    messages_sent: 0, messages_received: 0, app_bytes_sent: 0, app_bytes_received: 0,
    ws_frames_sent: 0, ws_frames_received: 0, ws_bytes_sent: 0, ws_bytes_received: 0,
    turns: 0, adapter_errors: 0, find_failures: 0,
    by_type_sent: {}, by_type_received: {},
  }
  guardProcess(err => {
    s.adapter_errors++
    log(`client: network error survived: ${err.code ?? ""} ${err.message}`)
  })

  const gotServerMessage = new Set()
  const done = new Set()
  const tcpSockets = []
  let sentSinceReceive = false
  let handshakeSeconds = null
  let firstReceiveSeconds = null
  let lastReceiveSeconds = null
  let finishedAt = null
  let finishResolve
  const finished = new Promise(resolve => (finishResolve = resolve))

  const t0 = performance.now()
  const elapsed = () => (performance.now() - t0) / 1000

  const adapter = new WebSocketClientAdapter(o.url) // default retryInterval (5000 ms)

  // --- instrumentation, installed before the Repo calls adapter.connect() ---
  const origOnOpen = adapter.onOpen
  adapter.onOpen = () => {
    s.connections++
    const ws = adapter.socket
    if (ws) {
      if (ws._socket) tcpSockets.push(ws._socket) // net.Socket: bytesRead/bytesWritten
      const rawSend = ws.send.bind(ws)
      ws.send = (data, ...rest) => {
        s.ws_frames_sent++
        s.ws_bytes_sent += data.byteLength ?? data.length ?? 0
        return rawSend(data, ...rest)
      }
    }
    origOnOpen()
  }
  const origOnClose = adapter.onClose
  adapter.onClose = () => {
    s.disconnects++
    origOnClose()
  }
  const origReceive = adapter.receiveMessage.bind(adapter)
  adapter.receiveMessage = bytes => {
    s.ws_frames_received++
    s.ws_bytes_received += bytes.byteLength ?? 0
    return origReceive(bytes)
  }
  const origSend = adapter.send.bind(adapter)
  adapter.send = message => {
    origSend(message) // throws if the socket is not open; the repo handles that
    if (message.type === "join") return
    s.messages_sent++
    s.app_bytes_sent += message.data?.byteLength ?? 0
    s.by_type_sent[message.type] = (s.by_type_sent[message.type] ?? 0) + 1
    sentSinceReceive = true
  }
  // Registered before the Repo's NetworkSubsystem listener, so it runs first.
  adapter.on("message", message => {
    s.messages_received++
    s.app_bytes_received += message.data?.byteLength ?? 0
    s.by_type_received[message.type] = (s.by_type_received[message.type] ?? 0) + 1
    const now = elapsed()
    if (firstReceiveSeconds === null) firstReceiveSeconds = now
    lastReceiveSeconds = now
    if (sentSinceReceive) {
      s.turns++
      sentSinceReceive = false
    }
    if (message.type === "sync" && message.documentId && expected.has(message.documentId)) {
      gotServerMessage.add(message.documentId)
      check(message.documentId)
    }
  })

  const repo = new Repo({
    network: [adapter],
    storage: new NodeFSStorageAdapter(o.storage),
  })

  function check(id) {
    if (done.has(id) || !gotServerMessage.has(id)) return
    const handle = repo.handles[id]
    if (!handle || !handle.isReady()) return
    if (sameHeads(A.getHeads(handle.doc()), expected.get(id))) {
      done.add(id)
      if (done.size === N && finishedAt === null) {
        finishedAt = elapsed()
        finishResolve(true)
      }
    }
  }

  const peerConnected = new Promise(resolve => {
    repo.networkSubsystem.on("peer", () => {
      s.handshakes++
      if (handshakeSeconds === null) handshakeSeconds = elapsed()
      resolve()
    })
  })

  const capTimer = setTimeout(() => finishResolve(false), cap * 1000)
  const progressTimer = setInterval(() => {
    log(`PROGRESS t=${elapsed().toFixed(1)}s done=${done.size}/${N} connections=${s.connections} recv=${s.messages_received} sent=${s.messages_sent}`)
  }, 5000)
  // Safety net for the event-driven check (cheap: only documents not yet done).
  const sweepTimer = setInterval(() => {
    for (const id of gotServerMessage) if (!done.has(id)) check(id)
  }, 1000)

  void (async () => {
    await peerConnected
    if (N === 0) {
      finishedAt = elapsed()
      finishResolve(true)
      return
    }
    for (const id of ids) {
      repo.find(id).catch(err => {
        s.find_failures++
        if (s.find_failures <= 5) log(`client: find(${id}) failed (sync continues): ${err.message}`)
      })
      const handle = repo.handles[id]
      handle.on("heads-changed", () => check(id))
      check(id)
    }
  })()

  const complete = await finished
  const seconds = complete ? finishedAt : elapsed()
  clearTimeout(capTimer)
  clearInterval(progressTimer)
  clearInterval(sweepTimer)

  let atHeads = 0
  for (const id of ids) {
    const h = repo.handles[id]
    if (h && h.isReady() && sameHeads(A.getHeads(h.doc()), expected.get(id))) atHeads++
  }
  const tcpSent = tcpSockets.reduce((a, t) => a + (t.bytesWritten ?? 0), 0)
  const tcpReceived = tcpSockets.reduce((a, t) => a + (t.bytesRead ?? 0), 0)
  const result = {
    complete,
    seconds: round(seconds),
    documents: N,
    documents_done: done.size,
    messages_sent: s.messages_sent,
    messages_received: s.messages_received,
    app_bytes_sent: s.app_bytes_sent,
    app_bytes_received: s.app_bytes_received,
    turns: s.turns,
    reconnects: Math.max(0, s.connections - 1),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
    progress_per_second: round(seconds > 0 ? done.size / seconds : 0, 2),
    handshake_seconds: handshakeSeconds === null ? null : round(handshakeSeconds),
    first_receive_seconds: firstReceiveSeconds === null ? null : round(firstReceiveSeconds),
    last_receive_seconds: lastReceiveSeconds === null ? null : round(lastReceiveSeconds),
    connections: s.connections,
    disconnects: s.disconnects,
    ws_frames_sent: s.ws_frames_sent,
    ws_frames_received: s.ws_frames_received,
    ws_bytes_sent: s.ws_bytes_sent,
    ws_bytes_received: s.ws_bytes_received,
    tcp_bytes_sent: tcpSent,
    tcp_bytes_received: tcpReceived,
    by_type_sent: s.by_type_sent,
    by_type_received: s.by_type_received,
    docs_at_expected_heads: atHeads,
    docs_with_server_message: gotServerMessage.size,
    find_failures: s.find_failures,
    adapter_errors: s.adapter_errors,
    cap_seconds: cap,
  }
  writeStdout(`RESULT ${JSON.stringify(result)}`)

  try {
    if (adapter.socket) adapter.disconnect()
  } catch (e) {
    log("client: disconnect:", e.message)
  }
  await flushRepo(repo)
  process.exit(0)
}

function round(x, digits = 3) {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

// ---------------------------------------------------------------- main

const commands = { seed: cmdSeed, apply: cmdApply, serve: cmdServe, client: cmdClient }
const [cmd, ...rest] = process.argv.slice(2)
if (!commands[cmd]) {
  log("usage: node peer.mjs seed|apply|serve|client [--options]  (see the header of peer.mjs)")
  process.exit(64)
}
commands[cmd](rest).then(
  () => {
    // serve keeps running until a signal; client exits by itself. seed and
    // apply exit here so that no library timer keeps the process alive.
    if (cmd === "seed" || cmd === "apply") process.exit(0)
  },
  err => {
    log(`${cmd}: error:`, err)
    process.exit(1)
  },
)
