import * as A from "@automerge/automerge"
import { readDocuments } from "/work/main/tests/js/automerge-peer/lib.mjs"
const docs = readDocuments("documents.bin")
const keep = []
let t = performance.now()
const mode = process.argv[2]
for (const [i, d] of docs.entries()) {
  let doc = mode === "inc" ? A.loadIncremental(A.init(), d) : A.load(d)
  if (mode === "diff") { A.diff(doc, [], A.getHeads(doc)) }
  keep.push(doc)
  if ((i + 1) % 400 === 0) { const n = performance.now(); console.log(mode, i + 1, ((n - t) / 400).toFixed(2), "ms/doc", "rss", (process.memoryUsage().rss/1e6).toFixed(0)); t = n }
}
process.exit(0)
