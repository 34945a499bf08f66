// Test-data generator for the automerge-repo benchmark peer: patient-record
// documents made with @automerge/automerge, in the formats the Rust side writes.
//
//   node gen.mjs --out DIR [--docs 200] [--records 20] [--seed 1]
// writes DIR/documents.bin, DIR/day.bin and DIR/expected.json
// ({"before": [[hex heads]...], "after": [[hex heads]...]}). Also used as a
// module by selftest.mjs.

import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import * as A from "@automerge/automerge"
import { parseArgs, writeDay, writeDocuments, normHeads } from "./lib.mjs"

/** Small deterministic PRNG (mulberry32) so runs are reproducible. */
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const GIVEN = ["Amina", "Baraka", "Chen", "Daudi", "Esi", "Fatuma", "Grace", "Hassan", "Imani", "Juma", "Kwame", "Li", "Mei", "Neema", "Omari", "Pendo", "Rehema", "Sefu", "Tumaini", "Zawadi"]
const FAMILY = ["Mwangi", "Otieno", "Wang", "Njoroge", "Achieng", "Kamau", "Liu", "Mushi", "Nyerere", "Zhang", "Okafor", "Banda"]
const VILLAGES = ["Kibaha", "Mlandizi", "Chalinze", "Bagamoyo", "Kisarawe", "Mkuranga", "Yilian", "Shuangqiao"]
const COMPLAINTS = ["fever and headache", "cough for three days", "abdominal pain", "follow-up of hypertension", "antenatal check", "skin rash", "diarrhoea", "joint pain", "routine immunisation", "eye irritation"]
const DIAGNOSES = [["B54", "Malaria, unspecified"], ["J06.9", "Acute upper respiratory infection"], ["I10", "Essential hypertension"], ["A09", "Infectious gastroenteritis"], ["Z34.0", "Supervision of normal first pregnancy"], ["L30.9", "Dermatitis, unspecified"], ["M25.5", "Pain in joint"], ["H10.9", "Conjunctivitis"]]
const DRUGS = ["Artemether/lumefantrine 20/120 mg", "Amoxicillin 500 mg", "Paracetamol 500 mg", "ORS sachet", "Zinc 20 mg", "Amlodipine 5 mg", "Ferrous sulfate 200 mg", "Chlorphenamine 4 mg"]
const CLINICIANS = ["CO Mrisho", "Nurse Wanjiru", "Dr. Huang", "CO Lema", "Nurse Akinyi"]

const pick = (r, xs) => xs[Math.floor(r() * xs.length)]
const pad = (n, w = 2) => String(n).padStart(w, "0")

function visit(r, day) {
  const [code, text] = pick(r, DIAGNOSES)
  return {
    date: `2024-${pad(1 + (day % 12))}-${pad(1 + (day % 28))}`,
    clinician: pick(r, CLINICIANS),
    complaint: pick(r, COMPLAINTS),
    vitals: {
      temperatureC: Math.round((36 + r() * 3) * 10) / 10,
      pulse: 60 + Math.floor(r() * 50),
      systolic: 100 + Math.floor(r() * 60),
      diastolic: 60 + Math.floor(r() * 35),
      weightKg: Math.round((20 + r() * 60) * 10) / 10,
    },
    diagnosis: { system: "ICD-10", code, text },
    prescriptions: [{ drug: pick(r, DRUGS), dose: "1 tab", frequency: "bd", days: 3 + Math.floor(r() * 5) }],
    notes: `Seen at ${pick(r, VILLAGES)} outpost; advised to return if symptoms persist.`,
  }
}

export function makePatient(i, r, visits = 10) {
  let doc = A.from({
    patientId: `YL-${pad(i, 6)}`,
    name: { given: pick(r, GIVEN), family: pick(r, FAMILY) },
    sex: r() < 0.5 ? "female" : "male",
    birthDate: `${1950 + Math.floor(r() * 70)}-${pad(1 + Math.floor(r() * 12))}-${pad(1 + Math.floor(r() * 28))}`,
    village: pick(r, VILLAGES),
    phone: `+255 7${Math.floor(r() * 1e8).toString().padStart(8, "0")}`,
    allergies: r() < 0.2 ? ["penicillin"] : [],
    visits: [],
  })
  for (let v = 0; v < visits; v++) {
    doc = A.change(doc, d => {
      d.visits.push(visit(r, i + v * 31))
    })
  }
  return doc
}

/**
 * Builds N documents and `records` day records. A record holds one or more raw
 * changes (every fourth record has two). Some documents get several records,
 * so later records depend on earlier ones, as a clinic day would produce.
 */
export function generate({ docs = 200, records = 20, seed = 1 } = {}) {
  const r = rng(seed)
  const patients = []
  for (let i = 0; i < docs; i++) patients.push(makePatient(i, r))
  const saved = patients.map(d => A.save(d))
  const before = patients.map(d => normHeads(A.getHeads(d)))
  const current = patients.slice()
  const day = []
  for (let k = 0; k < records; k++) {
    // spread over the documents, with every fifth record hitting the previous record's document
    const index = k % 5 === 4 && day.length > 0 ? day[day.length - 1].index : Math.floor(r() * docs)
    const old = current[index]
    let doc = A.change(old, d => {
      d.visits.push(visit(r, 400 + k))
    })
    if (k % 4 === 3) {
      doc = A.change(doc, d => {
        d.phone = `+255 6${Math.floor(r() * 1e8).toString().padStart(8, "0")}`
      })
    }
    const changes = A.getChanges(old, doc)
    const bytes = new Uint8Array(changes.reduce((a, c) => a + c.byteLength, 0))
    let off = 0
    for (const c of changes) {
      bytes.set(c, off)
      off += c.byteLength
    }
    current[index] = doc
    day.push({ index, bytes })
  }
  const after = current.map(d => normHeads(A.getHeads(d)))
  return { saved, day, before, after }
}

export function writeFixture(dir, opts) {
  fs.mkdirSync(dir, { recursive: true })
  const g = generate(opts)
  writeDocuments(path.join(dir, "documents.bin"), g.saved)
  writeDay(path.join(dir, "day.bin"), g.day)
  fs.writeFileSync(path.join(dir, "expected.json"), JSON.stringify({ before: g.before, after: g.after }))
  return g
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const o = parseArgs(process.argv.slice(2), { required: ["out"], defaults: { docs: "200", records: "20", seed: "1" } })
  const g = writeFixture(o.out, { docs: Number(o.docs), records: Number(o.records), seed: Number(o.seed) })
  const sizes = g.saved.map(b => b.byteLength)
  console.log(JSON.stringify({
    documents: sizes.length,
    bytes: sizes.reduce((a, b) => a + b, 0),
    min: Math.min(...sizes),
    max: Math.max(...sizes),
    records: g.day.length,
    day_bytes: g.day.reduce((a, d) => a + d.bytes.byteLength, 0),
  }))
}
