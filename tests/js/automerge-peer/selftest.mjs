#!/usr/bin/env node
// Self-test of peer.mjs on loopback (127.0.0.1 only).
//
//   node selftest.mjs [--docs 200] [--records 20] [--keep] [--no-outage]
//
// Generates patient-record documents with @automerge/automerge (gen.mjs),
// writes documents.bin / day.bin in the Rust side's formats, then runs, each
// as its own process:
//   seed -> serve (random free port) -> client (first full sync) -> client
//   (idle sync) -> stop server -> apply -> serve again -> client (incremental)
//   -> client against a closed port (must stop at --cap, exit 0, complete=false)
//   -> client through a throttling TCP proxy that cuts every connection and
//      refuses new ones for a moment (must reconnect and complete).
// Checks every RESULT and that state.json and the client storage hold the
// expected heads. Prints RESULT lines for the record, then `N passed, N failed`;
// exits 1 if anything failed. Work files go to a temp dir (kept with --keep).

import { spawn } from "node:child_process"
import fs from "node:fs"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { writeFixture } from "./gen.mjs"
import { parseArgs, readState, sameHeads, sleep } from "./lib.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
const PEER = path.join(here, "peer.mjs")
const HOST = "127.0.0.1"

const o = parseArgs(process.argv.slice(2), { defaults: { docs: "200", records: "20" } })
const DOCS = Number(o.docs)
const RECORDS = Number(o.records)

let passed = 0
let failed = 0
function check(name, ok, detail = "") {
  if (ok) passed++
  else failed++
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? ` -- ${detail}` : ""}`)
}

/** Runs `node peer.mjs ...args` to completion. */
function run(args, { timeoutMs = 600_000 } = {}) {
  return new Promise(resolve => {
    const child = spawn(process.execPath, [PEER, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", d => (stdout += d))
    child.stderr.on("data", d => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.on("close", code => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function resultOf(out, tag = "RESULT") {
  const line = out.stdout.split("\n").find(l => l.startsWith(tag + " "))
  if (!line) return null
  try {
    return JSON.parse(line.slice(tag.length + 1))
  } catch {
    return null
  }
}

/** Starts `peer.mjs serve` and resolves once it printed READY <port>. */
function startServer(storage) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PEER, "serve", "--storage", storage, "--host", HOST, "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    })
    let stdout = ""
    let stderr = ""
    const exited = new Promise(r => child.on("close", (code, signal) => r({ code, signal, stderr })))
    child.stderr.on("data", d => (stderr += d))
    child.stdout.on("data", d => {
      stdout += d
      const m = stdout.match(/^READY (\d+)$/m)
      if (m) resolve({ child, port: Number(m[1]), exited, stop: () => (child.kill("SIGTERM"), exited) })
    })
    child.on("close", code => reject(new Error(`server exited early (${code}): ${stderr}`)))
  })
}

/** Opens a client's storage offline and compares every document's heads. */
async function storageMatches(dir, state) {
  const repo = new Repo({ storage: new NodeFSStorageAdapter(dir), network: [] })
  let matching = 0
  for (const [i, id] of state.ids.entries()) {
    try {
      const handle = await repo.find(id)
      if (sameHeads(A.getHeads(handle.doc()), state.heads[i])) matching++
    } catch {
      // missing document: not matching
    }
  }
  return matching
}

/**
 * A loopback TCP proxy that limits each direction to `rate` bytes/s, and can
 * cut every connection and refuse new ones for a while (a link outage).
 */
class FlakyProxy {
  constructor(targetPort, rate) {
    this.targetPort = targetPort
    this.rate = rate
    this.sockets = new Set()
    this.server = net.createServer(c => this.#accept(c))
  }

  listen(port = 0) {
    return new Promise(resolve => this.server.listen(port, HOST, () => resolve((this.port = this.server.address().port))))
  }

  #accept(client) {
    const upstream = net.connect(this.targetPort, HOST)
    for (const s of [client, upstream]) {
      this.sockets.add(s)
      s.on("error", () => {})
      s.on("close", () => {
        this.sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    this.#pipe(client, upstream)
    this.#pipe(upstream, client)
  }

  #pipe(src, dst) {
    const queue = []
    let queued = 0
    let pumping = false
    const pump = () => {
      if (queue.length === 0 || dst.destroyed) {
        pumping = false
        if (src.isPaused()) src.resume()
        return
      }
      pumping = true
      let chunk = queue.shift()
      if (chunk.length > 8192) {
        queue.unshift(chunk.subarray(8192))
        chunk = chunk.subarray(0, 8192)
      }
      queued -= chunk.length
      dst.write(chunk)
      setTimeout(pump, (chunk.length / this.rate) * 1000)
    }
    src.on("data", d => {
      queue.push(d)
      queued += d.length
      if (queued > 64 * 1024) src.pause()
      if (!pumping) pump()
    })
  }

  /** Cuts all connections and refuses new ones for `ms`, then listens again. */
  async outage(ms) {
    await new Promise(resolve => {
      this.server.close(() => resolve())
      for (const s of this.sockets) s.destroy()
    })
    await sleep(ms)
    this.server = net.createServer(c => this.#accept(c))
    await this.listen(this.port)
  }

  close() {
    for (const s of this.sockets) s.destroy()
    this.server.close()
  }
}

function summary(label, r) {
  if (!r) return
  const { complete, seconds, documents_done, messages_sent, messages_received, app_bytes_sent, app_bytes_received, turns, reconnects, tcp_bytes_sent, tcp_bytes_received, peak_rss_mb } = r
  console.log(`   ${label}: ${JSON.stringify({ complete, seconds, documents_done, messages_sent, messages_received, app_bytes_sent, app_bytes_received, turns, reconnects, tcp_bytes_sent, tcp_bytes_received, peak_rss_mb })}`)
}

function expectComplete(label, out, n, extra = () => []) {
  const r = resultOf(out)
  check(`${label}: exit code 0`, out.code === 0, `code ${out.code}${out.code ? `: ${out.stderr.slice(-800)}` : ""}`)
  check(`${label}: one RESULT line`, r !== null, r ? "" : out.stdout.slice(0, 300))
  if (!r) return null
  check(`${label}: complete`, r.complete === true && r.documents === n && r.documents_done === n && r.docs_at_expected_heads === n,
    `complete=${r.complete} documents=${r.documents} done=${r.documents_done} at_heads=${r.docs_at_expected_heads}`)
  for (const [name, ok, detail] of extra(r)) check(`${label}: ${name}`, ok, detail)
  summary(label, r)
  return r
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "am-peer-selftest-"))
  const docsBin = path.join(work, "documents.bin")
  const dayBin = path.join(work, "day.bin")
  const stateFile = path.join(work, "state.json")
  const serverDir = path.join(work, "server")
  const clientDir = path.join(work, "client")
  console.log(`selftest: ${DOCS} documents, ${RECORDS} day records, work dir ${work}`)

  const gen = writeFixture(work, { docs: DOCS, records: RECORDS, seed: 7 })
  const sizes = gen.saved.map(b => b.byteLength)
  console.log(`   generated ${sizes.length} documents, ${sizes.reduce((a, b) => a + b, 0)} bytes (${Math.min(...sizes)}-${Math.max(...sizes)} each), ${gen.day.length} day records`)

  // seed
  const seed = await run(["seed", "--storage", serverDir, "--documents", docsBin, "--state", stateFile])
  check("seed: exit code 0", seed.code === 0, seed.stderr.slice(-800))
  const seeded = resultOf(seed, "SEEDED")
  check("seed: SEEDED line", seeded?.documents === DOCS, seed.stdout.trim())
  let state = readState(stateFile)
  check("seed: state.json ids", state.ids.length === DOCS && new Set(state.ids).size === DOCS)
  check("seed: state.json heads = generated heads", state.heads.every((h, i) => sameHeads(h, gen.before[i])))

  // first server
  let server = await startServer(serverDir)
  check("serve: READY <port>", server.port > 0, `port ${server.port}`)
  const url = () => `ws://${HOST}:${server.port}`
  const client = (dir, cap = 120, u = url()) => run(["client", "--url", u, "--storage", dir, "--state", stateFile, "--cap", String(cap)])

  // first full sync
  const first = expectComplete("client first sync", await client(clientDir), DOCS, r => [
    ["no reconnects", r.reconnects === 0, `reconnects=${r.reconnects}`],
    ["received the documents", r.app_bytes_received > 0.5 * sizes.reduce((a, b) => a + b, 0), `app_bytes_received=${r.app_bytes_received}`],
  ])
  check("client first sync: storage holds every document", (await storageMatches(clientDir, state)) === DOCS)

  // idle sync
  expectComplete("client idle sync", await client(clientDir), DOCS, r => [
    ["one server sync message per document at least", (r.by_type_received.sync ?? 0) >= DOCS, JSON.stringify(r.by_type_received)],
    ["far fewer bytes than the first sync", first && r.app_bytes_received < first.app_bytes_received / 4, `${r.app_bytes_received} vs ${first?.app_bytes_received}`],
  ])

  // stop the server, apply the day, restart
  const stopped = await server.stop()
  check("serve: SIGTERM exits 0", stopped.code === 0, `code=${stopped.code} signal=${stopped.signal} ${stopped.stderr.slice(-400)}`)
  const apply = await run(["apply", "--storage", serverDir, "--day", dayBin, "--state", stateFile])
  check("apply: exit code 0", apply.code === 0, apply.stderr.slice(-800))
  const applied = resultOf(apply, "APPLIED")
  check("apply: APPLIED line", applied?.records === RECORDS && applied?.missing_deps === 0, apply.stdout.trim())
  state = readState(stateFile)
  check("apply: state.json heads = generated heads after the day", state.heads.every((h, i) => sameHeads(h, gen.after[i])))
  const changedDocs = gen.after.filter((h, i) => !sameHeads(h, gen.before[i])).length
  server = await startServer(serverDir)
  check("serve (restarted): READY <port>", server.port > 0)

  // incremental sync
  expectComplete("client incremental sync", await client(clientDir), DOCS, r => [
    ["fewer bytes than the first sync", first && r.app_bytes_received < first.app_bytes_received / 2, `${r.app_bytes_received} vs ${first?.app_bytes_received}`],
  ])
  check(`client incremental sync: storage holds the new heads (${changedDocs} documents changed)`, (await storageMatches(clientDir, state)) === DOCS)

  // nothing listening: must stop at the cap and exit 0
  const closedPort = await new Promise(resolve => {
    const s = net.createServer().listen(0, HOST, () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
  const down = await client(path.join(work, "client-down"), 3, `ws://${HOST}:${closedPort}`)
  const dr = resultOf(down)
  check("client with no server: exit 0 at the cap", down.code === 0 && dr?.complete === false && dr?.documents_done === 0 && dr.seconds >= 3,
    `code=${down.code} ${JSON.stringify(dr)?.slice(0, 200)} ${down.stderr.slice(-300)}`)

  // link outage in the middle of a first sync
  if (!o["no-outage"]) {
    const total = sizes.reduce((a, b) => a + b, 0)
    const rate = Math.max(50_000, Math.round(total / 4)) // about 4 s for the whole transfer
    const proxy = new FlakyProxy(server.port, rate)
    await proxy.listen()
    const pending = client(path.join(work, "client-outage"), 120, `ws://${HOST}:${proxy.port}`)
    await sleep(1500)
    await proxy.outage(1500)
    const out = await pending
    proxy.close()
    expectComplete("client across a link outage", out, DOCS, r => [
      ["reconnected", r.reconnects >= 1, `reconnects=${r.reconnects} adapter_errors=${r.adapter_errors}`],
    ])
  }

  const last = await server.stop()
  check("serve: second SIGTERM exits 0", last.code === 0, `code=${last.code} ${last.stderr.slice(-400)}`)

  if (o.keep) console.log(`work dir kept: ${work}`)
  else fs.rmSync(work, { recursive: true, force: true })
}

main()
  .catch(err => {
    failed++
    console.log(`FAIL selftest crashed: ${err?.stack ?? err}`)
  })
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed`)
    process.exit(failed === 0 ? 0 : 1)
  })
