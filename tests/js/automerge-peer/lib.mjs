// Shared helpers for the automerge-repo side of the sync benchmark:
// the two binary input formats written by the Rust side, state.json, and a
// tiny argument parser. Used by peer.mjs and selftest.mjs.

import fs from "node:fs"
import path from "node:path"

/** documents.bin: repeated [u32 LE length][bytes of one Automerge save()]. */
export function readDocuments(file) {
  const buf = fs.readFileSync(file)
  const docs = []
  let off = 0
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new Error(`${file}: truncated length at byte ${off}`)
    const len = buf.readUInt32LE(off)
    off += 4
    if (off + len > buf.length) throw new Error(`${file}: record ${docs.length} runs past end of file`)
    docs.push(new Uint8Array(buf.buffer, buf.byteOffset + off, len))
    off += len
  }
  return docs
}

export function writeDocuments(file, docs) {
  const parts = []
  for (const bytes of docs) {
    const hdr = Buffer.alloc(4)
    hdr.writeUInt32LE(bytes.byteLength, 0)
    parts.push(hdr, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }
  fs.writeFileSync(file, Buffer.concat(parts))
}

/** day.bin: repeated [u32 LE document index][u32 LE length][raw change bytes]. */
export function readDay(file) {
  const buf = fs.readFileSync(file)
  const records = []
  let off = 0
  while (off < buf.length) {
    if (off + 8 > buf.length) throw new Error(`${file}: truncated header at byte ${off}`)
    const index = buf.readUInt32LE(off)
    const len = buf.readUInt32LE(off + 4)
    off += 8
    if (off + len > buf.length) throw new Error(`${file}: record ${records.length} runs past end of file`)
    records.push({ index, bytes: new Uint8Array(buf.buffer, buf.byteOffset + off, len) })
    off += len
  }
  return records
}

export function writeDay(file, records) {
  const parts = []
  for (const { index, bytes } of records) {
    const hdr = Buffer.alloc(8)
    hdr.writeUInt32LE(index, 0)
    hdr.writeUInt32LE(bytes.byteLength, 4)
    parts.push(hdr, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }
  fs.writeFileSync(file, Buffer.concat(parts))
}

/** Heads as stored in state.json: Automerge's hex change hashes, sorted. */
export function normHeads(heads) {
  return [...heads].sort()
}

export function sameHeads(a, b) {
  if (!a || !b || a.length !== b.length) return false
  const x = normHeads(a)
  const y = normHeads(b)
  return x.every((h, i) => h === y[i])
}

export function readState(file) {
  const state = JSON.parse(fs.readFileSync(file, "utf8"))
  if (!Array.isArray(state.ids) || !Array.isArray(state.heads) || state.ids.length !== state.heads.length) {
    throw new Error(`${file}: expected {"ids": [...], "heads": [[...]...]} of equal length`)
  }
  return state
}

/** Write state.json atomically (tmp file + rename), so a reader never sees half a file. */
export function writeState(file, state) {
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`)
  fs.writeFileSync(tmp, JSON.stringify({ ids: state.ids, heads: state.heads.map(normHeads) }) + "\n")
  fs.renameSync(tmp, file)
}

/** Parses `--name value` pairs (and bare `--flag`) after the subcommand. */
export function parseArgs(argv, { required = [], defaults = {} } = {}) {
  const out = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith("--")) throw new Error(`unexpected argument: ${a}`)
    const key = a.slice(2)
    if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
      out[key] = argv[++i]
    } else {
      out[key] = true
    }
  }
  for (const r of required) {
    if (out[r] === undefined || out[r] === true) throw new Error(`missing --${r} <value>`)
  }
  return out
}

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
