#!/usr/bin/env node
// Validates FHIR R4 (4.0.1) JSON resources: node validate-fhir.mjs [--warnings] <dir-or-file>...
//                                           node validate-fhir.mjs --self-check
//
// Every *.json file (directories are walked recursively) holds one resource, possibly a Bundle.
// A Bundle is checked at its own level and each entry.resource is checked (and reported) on its
// own, as `<file>#entry[i]`, nested Bundles too. Prints `ok <file> <type>/<id>` or
// `FAIL <file> <type>/<id>: <location>: <problem>; ...` per resource, then
// `fhir: N valid, M invalid`; exits 1 if anything is invalid or no resource was found.
// --warnings also prints the warnings (codes outside preferred/example value sets, Bundle entries
// without fullUrl); they never make a resource invalid.
//
// Which validator, and why. Two ready-made validators were tried on the fixtures here:
//  * npm `fhir` 4.12.0 (FHIR.js; ships the R4 4.0.1 StructureDefinitions and value sets and uses
//    them by default: `new Fhir().validate(obj, { errorOnUnexpected: true })`). It catches unknown
//    elements, missing required (min 1) elements, a string where a number goes, codes outside a
//    *required* binding (Task.status "bogus", Observation.status "x", Condition.clinicalStatus),
//    wrong Reference target types (Observation.subject -> Organization), unknown resourceType,
//    and it descends into Bundle.entry.resource and contained. It misses: date/dateTime/instant/
//    id formats (its regexes are unanchored, so "1958-13-45" and an id with spaces pass, and
//    `instant` is not checked at all), time zones on dateTimes with a time, any JSON type check of
//    string-like primitives (family: 123 passes), two value[x] choices at once, an array where one
//    value goes, JSON null (it crashes on `"active": null`), empty values, all invariants, and
//    everything under contentReference elements (Bundle.entry.link, Observation.component.
//    referenceRange, nested Questionnaire items...).
//  * PyPI `fhir.resources` (pydantic; R4 4.0.1 is the default only up to 6.4.0, which needs
//    pydantic < 2; 6.5.0 is R4B 4.3.0, 7.x R5). It checks date/id formats and choice exclusivity,
//    but it misses required bindings entirely (Task.status "bogus" and Observation.status "x"
//    pass), coerces wrong JSON types ("152" for a Quantity value, 123 for a string, "yes" for a
//    boolean all pass), accepts dateTimes with a time but no zone, null elements, and wrong
//    Reference targets.
// So this script uses npm `fhir` (the stricter on what a generator gets wrong: codes, types,
// references) and adds below what it misses: anchored R4 regexes and calendar checks for every
// primitive, JSON types, cardinality 1 vs arrays, null/empty values (ele-1), one value[x],
// Extension url/value (ext-1), narrative div, contentReference subtrees (run through FHIR.js's own
// validator), and a few invariants: bdl-1..5/7/8/9/10/11/12, fullUrl matching the resource's
// type/id, obs-6, obs-7, qty-3, per-1, cpt-2, att-1. Not checked: other invariants (FHIRPath
// constraints), profiles named in meta.profile, terminology outside the bundled R4 value sets
// (LOINC, ICD-10, SNOMED, UCUM codes are not looked up), contained-resource reference rules.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fhirPkg from 'fhir';

const { Fhir, Validator } = fhirPkg;
const fhir = new Fhir();
const defs = fhir.parser.parsedStructureDefinitions;
const FHIR_OPTIONS = { errorOnUnexpected: true };

// ---------------------------------------------------------------------------------------------
// Primitive types, as in the R4 spec's datatypes page (anchored here).
const YEAR = '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)';
const MONTH = '(0[1-9]|1[0-2])';
const DAY = '(0[1-9]|[1-2][0-9]|3[0-1])';
const TIME = '([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?';
const ZONE = '(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))';
const re = (s) => new RegExp(`^(?:${s})$`, 'u');
const DATE_RE = re(`${YEAR}(-${MONTH}(-${DAY})?)?`);
const DATETIME_RE = re(`${YEAR}(-${MONTH}(-${DAY}(T${TIME}${ZONE})?)?)?`);
const INSTANT_RE = re(`${YEAR}-${MONTH}-${DAY}T${TIME}${ZONE}`);
const TIME_RE = re(TIME);

// A real calendar day (the regexes allow 2023-02-30).
function calendarOk(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(s);
  if (!m) return true;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return d <= new Date(Date.UTC(y, mo, 0)).getUTCDate();
}

// \s and \S in the spec's regexes are Java's, ASCII only: U+3000 (the full-width space of
// Chinese text) and U+00A0 are ordinary characters there, so they are here too.
const WS = '[ \\t\\n\\x0B\\f\\r]';
const NWS = '[^ \\t\\n\\x0B\\f\\r]';
const TEXT = '[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F]+'; // non-empty, no control characters but \t \r \n
const STRINGY = {
  string: [re(TEXT), 'a non-empty string without control characters'],
  markdown: [re(TEXT), 'non-empty markdown without control characters'],
  code: [re(`${NWS}+(${WS}${NWS}+)*`), 'a code (no leading, trailing or repeated whitespace)'],
  id: [re('[A-Za-z0-9\\-\\.]{1,64}'), 'an id (1-64 of A-Z a-z 0-9 - .)'],
  uri: [re(`${NWS}+`), 'a uri (no whitespace)'],
  url: [re(`${NWS}+`), 'a url (no whitespace)'],
  canonical: [re(`${NWS}+`), 'a canonical (no whitespace)'],
  oid: [re('urn:oid:[0-2](\\.(0|[1-9][0-9]*))+'), 'an oid (urn:oid:1.2.3)'],
  uuid: [re('urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'), 'a uuid (urn:uuid:, lower case)'],
  base64Binary: [re(`(${WS}*([0-9a-zA-Z\\+/=]){4}${WS}*)+`), 'base64'],
  date: [DATE_RE, 'a date YYYY, YYYY-MM or YYYY-MM-DD'],
  dateTime: [DATETIME_RE, 'a dateTime YYYY[-MM[-DD[Thh:mm:ss[.fff](Z|+hh:mm)]]] (a time needs a zone)'],
  instant: [INSTANT_RE, 'an instant YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm)'],
  time: [TIME_RE, 'a time hh:mm:ss'],
  xhtml: [re('[\\s\\S]+'), 'xhtml'],
};
const INT32 = (v) => Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;
const NUMERIC = {
  integer: [INT32, 'a JSON integer (32-bit)'],
  unsignedInt: [(v) => INT32(v) && v >= 0, 'a JSON integer >= 0'],
  positiveInt: [(v) => INT32(v) && v >= 1, 'a JSON integer >= 1'],
  decimal: [(v) => Number.isFinite(v), 'a JSON number'],
};
const isPrimitive = (t) => t in STRINGY || t in NUMERIC || t === 'boolean';
const jsonType = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// The strict walk: one pass over the JSON guided by FHIR.js's parsed R4 definitions.
class Strict {
  constructor({ bundleRules = true } = {}) {
    this.bundleRules = bundleRules; // off for a Bundle whose entries' resources were taken out
    this.errors = []; // {location, message}
    this.warnings = [];
    this.fhirMessages = []; // extra FHIR.js messages from contentReference subtrees
    this.shapeErrors = []; // locations whose JSON shape is wrong: FHIR.js noise below is dropped
  }
  err(location, message, shape = false) {
    this.errors.push({ location, message });
    if (shape) this.shapeErrors.push(location);
  }

  resource(obj, at) {
    const def = defs[obj.resourceType];
    if (!def) return; // FHIR.js reports the unknown resourceType
    this.object(obj, def._properties, at, obj.resourceType);
    this.invariants(obj, at);
  }

  // props of a type: inline backbone, contentReference (#Type.a.b) or a named type
  propsOf(p) {
    if (p._properties) return p._properties;
    if (p._type.startsWith('#')) {
      const [type, ...steps] = p._type.slice(1).split('.');
      let props = defs[type]?._properties;
      for (const step of steps) props = props?.find((q) => q._name === step)?._properties;
      return props;
    }
    return defs[p._type]?._properties;
  }

  object(obj, props, at, typeName) {
    if (Object.keys(obj).length === 0) {
      this.err(at, 'empty object: every element needs a value or children (ele-1); omit it instead');
      return;
    }
    const byName = new Map(props.map((p) => [p._name, p]));
    const choices = new Map();
    for (const [key, value] of Object.entries(obj)) {
      if (key === 'resourceType') continue;
      const p = byName.get(key);
      if (!p) continue; // FHIR.js reports unexpected elements
      if (p._choice) choices.set(p._choice, [...(choices.get(p._choice) || []), key]);
      const loc = `${at}.${key}`;
      if (value === null) {
        this.err(loc, 'null is not allowed: omit the element (serde: skip_serializing_if = "Option::is_none")', true);
        continue;
      }
      if (p._multiple) {
        if (!Array.isArray(value)) continue; // FHIR.js: "Property is not an array"
        if (value.length === 0) {
          this.err(loc, 'empty array: omit the element instead (ele-1)', true);
          continue;
        }
        value.forEach((v, i) => {
          if (v === null) {
            // allowed only as a placeholder when the parallel _element array has an entry there
            const shadow = key.startsWith('_') ? obj[key.slice(1)] : obj[`_${key}`];
            if (!(Array.isArray(shadow) && shadow[i] != null)) this.err(`${loc}[${i}]`, 'null in an array (allowed only where the parallel _element array has a value)', true);
          } else this.value(v, p, `${loc}[${i}]`);
        });
      } else if (Array.isArray(value)) {
        this.err(loc, `expected a single value (max cardinality 1), got an array`, true);
      } else this.value(value, p, loc);
    }
    for (const [choice, keys] of choices) {
      if (keys.filter((k) => !k.startsWith('_')).length > 1) this.err(`${at}.${choice.replace(/\[x\]$/, '')}[x]`, `only one of ${keys.join(', ')} may be present`);
    }
    if (typeName) this.typeRules(obj, typeName, at);
  }

  value(v, p, loc) {
    const t = p._type;
    if (t in STRINGY) {
      if (typeof v !== 'string') return this.err(loc, `expected a JSON string (${t}), got ${jsonType(v)} ${JSON.stringify(v)}`, true);
      if (!STRINGY[t][0].test(v)) return this.err(loc, `"${v}" is not ${STRINGY[t][1]}`, true);
      if ((t === 'date' || t === 'dateTime' || t === 'instant') && !calendarOk(v)) return this.err(loc, `"${v}" is not a calendar day`, true);
      if (t === 'xhtml' && !(/^\s*<div[\s>]/.test(v) && v.includes('xmlns="http://www.w3.org/1999/xhtml"'))) {
        this.err(loc, 'narrative div must be <div xmlns="http://www.w3.org/1999/xhtml">...</div>', true);
      }
      return;
    }
    if (t in NUMERIC) {
      if (typeof v !== 'number') return this.err(loc, `expected ${NUMERIC[t][1]}, got ${jsonType(v)} ${JSON.stringify(v)}`, true);
      if (!NUMERIC[t][0](v)) this.err(loc, `${v} is not ${NUMERIC[t][1]}`, true);
      return;
    }
    if (t === 'boolean') {
      if (typeof v !== 'boolean') this.err(loc, `expected a JSON boolean, got ${jsonType(v)} ${JSON.stringify(v)}`, true);
      return;
    }
    if (!isObject(v)) return this.err(loc, `expected a JSON object (${t}), got ${jsonType(v)} ${JSON.stringify(v)}`, true);
    if (t === 'Resource') {
      if (typeof v.resourceType !== 'string') return this.err(loc, 'a resource needs "resourceType"', true);
      return this.resource(v, loc);
    }
    const props = this.propsOf(p);
    if (!props) return;
    if (t.startsWith('#')) {
      // FHIR.js skips contentReference elements: run its validator on this subtree ourselves.
      const sub = new Validator(fhir.parser, FHIR_OPTIONS, undefined, false, v);
      sub.validateProperties(v, props, [loc]);
      this.fhirMessages.push(...sub.response.messages);
    }
    const typeName = p._properties || t.startsWith('#') ? null : t;
    this.object(v, props, loc, typeName);
  }

  // Rules of data types (FHIRPath invariants, by hand).
  typeRules(o, t, at) {
    if (t === 'Extension') {
      const values = Object.keys(o).filter((k) => /^value[A-Z]/.test(k));
      if (values.length && o.extension) this.err(at, 'an extension has either value[x] or nested extensions, not both (ext-1)');
      if (!values.length && !o.extension) this.err(at, 'an extension needs a value[x] or nested extensions (ext-1)');
      if (typeof o.url === 'string' && !/^\S+$/.test(o.url)) this.err(`${at}.url`, 'extension url must be a uri');
    }
    if (['Quantity', 'SimpleQuantity', 'Age', 'Duration', 'Count', 'Distance', 'MoneyQuantity'].includes(t)) {
      if (o.code !== undefined && o.system === undefined) this.err(at, 'a Quantity with a code needs a system (qty-3)');
    }
    if (t === 'Period' && typeof o.start === 'string' && typeof o.end === 'string') {
      const [s, e] = [Date.parse(o.start), Date.parse(o.end)];
      if (!Number.isNaN(s) && !Number.isNaN(e) && s > e) this.err(at, 'Period start is after end (per-1)');
    }
    if (t === 'ContactPoint' && o.value !== undefined && o.system === undefined) this.err(at, 'a ContactPoint with a value needs a system (cpt-2)');
    if (t === 'Attachment' && o.data !== undefined && o.contentType === undefined) this.err(at, 'an Attachment with data needs contentType (att-1)');
  }

  // Rules of resources.
  invariants(r, at) {
    if (r.resourceType === 'Observation') {
      const hasValue = (o) => Object.keys(o).some((k) => /^value[A-Z]/.test(k));
      if (r.dataAbsentReason && hasValue(r)) this.err(at, 'dataAbsentReason only when there is no value[x] (obs-6)');
      const codes = new Set((r.code?.coding || []).map((c) => `${c.system}|${c.code}`));
      (r.component || []).forEach((c, i) => {
        if (c && c.dataAbsentReason && hasValue(c)) this.err(`${at}.component[${i}]`, 'dataAbsentReason only when there is no value[x] (obs-6)');
        if (hasValue(r) && (c?.code?.coding || []).some((cc) => codes.has(`${cc.system}|${cc.code}`))) {
          this.err(`${at}.component[${i}].code`, 'a component code must differ from Observation.code when the Observation has a value (obs-7)');
        }
      });
    }
    if (r.resourceType === 'Bundle' && this.bundleRules) this.bundle(r, at);
  }

  bundle(b, at) {
    const type = b.type;
    const entries = Array.isArray(b.entry) ? b.entry : [];
    if (b.total !== undefined && !['searchset', 'history'].includes(type)) this.err(`${at}.total`, 'total only when type is searchset or history (bdl-1)');
    if (type === 'document') {
      if (!b.identifier?.system || !b.identifier?.value) this.err(at, 'a document Bundle needs identifier with system and value (bdl-9)');
      if (!b.timestamp) this.err(at, 'a document Bundle needs a timestamp (bdl-10)');
      if (entries[0]?.resource?.resourceType !== 'Composition') this.err(`${at}.entry[0]`, 'a document Bundle starts with a Composition (bdl-11)');
    }
    if (type === 'message' && entries[0]?.resource?.resourceType !== 'MessageHeader') this.err(`${at}.entry[0]`, 'a message Bundle starts with a MessageHeader (bdl-12)');
    const seen = new Map();
    entries.forEach((e, i) => {
      const loc = `${at}.entry[${i}]`;
      if (!isObject(e)) return;
      if (e.search !== undefined && type !== 'searchset') this.err(`${loc}.search`, 'entry.search only in a searchset (bdl-2)');
      const needsRequest = ['batch', 'transaction', 'history'].includes(type);
      if (needsRequest && e.request === undefined) this.err(loc, `entry.request is required in a ${type} Bundle (bdl-3)`);
      if (!needsRequest && e.request !== undefined) this.err(`${loc}.request`, `entry.request is not allowed in a ${type} Bundle (bdl-3)`);
      const needsResponse = ['batch-response', 'transaction-response', 'history'].includes(type);
      if (needsResponse && e.response === undefined) this.err(loc, `entry.response is required in a ${type} Bundle (bdl-4)`);
      if (!needsResponse && e.response !== undefined) this.err(`${loc}.response`, `entry.response is not allowed in a ${type} Bundle (bdl-4)`);
      if (e.resource === undefined && e.request === undefined && e.response === undefined) this.err(loc, 'an entry needs a resource, request or response (bdl-5)');
      const r = isObject(e.resource) ? e.resource : null;
      if (typeof e.fullUrl === 'string') {
        if (e.fullUrl.includes('/_history/')) this.err(`${loc}.fullUrl`, 'fullUrl cannot be version specific (bdl-8)');
        const key = `${e.fullUrl}|${r?.meta?.versionId ?? ''}`;
        if (seen.has(key)) this.err(`${loc}.fullUrl`, `fullUrl repeats entry[${seen.get(key)}] (bdl-7)`);
        else seen.set(key, i);
        // A RESTful fullUrl ([base]/Type/id) SHALL end with the resource's type and id.
        const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(e.fullUrl);
        if (r && m && !/^urn:/.test(e.fullUrl) && (m[1] !== r.resourceType || m[2] !== r.id)) {
          this.err(`${loc}.fullUrl`, `fullUrl ${e.fullUrl} does not end with ${r.resourceType}/${r.id}`);
        }
        if (r && /^urn:uuid:/.test(e.fullUrl) === false && /^urn:/.test(e.fullUrl) === false && !m) {
          this.warnings.push({ location: `${loc}.fullUrl`, message: 'fullUrl is neither [base]/Type/id nor urn:uuid:' });
        }
      } else if (r) {
        this.warnings.push({ location: `${loc}.fullUrl`, message: 'entry has a resource but no fullUrl (references between entries cannot resolve)' });
      }
    });
  }
}

// The element definition at a FHIR.js location such as "Observation.component[0].code".
function propAt(location) {
  const [type, ...steps] = location.replace(/\[\d+\]/g, '').split('.');
  let props = defs[type]?._properties;
  let p;
  for (const step of steps) {
    p = props?.find((q) => q._name === step);
    if (!p) return undefined;
    props = new Strict().propsOf(p);
  }
  return p;
}

// "Code "x" not found in value set" -> which value set, and its codes when there are few.
function explainCode(m) {
  const p = propAt(m.location);
  if (!p?._valueSet) return m.message;
  const url = p._valueSet.split('|')[0];
  const codes = (fhir.parser.parsedValueSets[url]?.systems || []).flatMap((s) => s.codes.map((c) => c.code));
  const allowed = codes.length && codes.length <= 40 ? ` (allowed: ${codes.join(', ')})` : '';
  return `${m.message} ${url}, ${p._valueSetStrength} binding${allowed}`;
}

// ---------------------------------------------------------------------------------------------
function validateOne(resource, strictOptions) {
  const strict = new Strict(strictOptions);
  let fhirMessages = [];
  try {
    fhirMessages = fhir.validate(resource, FHIR_OPTIONS).messages;
  } catch (e) {
    fhirMessages = [{ location: resource.resourceType, severity: 'error', message: `FHIR.js validator crashed: ${e.message}` }];
  }
  strict.resource(resource, resource.resourceType);
  const noisy = (loc) => strict.shapeErrors.some((s) => loc === s || loc.startsWith(`${s}.`) || loc.startsWith(`${s}[`));
  const friendly = { 'Missing property': 'missing required element', 'Unexpected property': 'unknown element (not in R4)' };
  const errors = [];
  const warnings = [...strict.warnings];
  for (const m of [...fhirMessages, ...strict.fhirMessages]) {
    const loc = m.location || resource.resourceType || '';
    if (m.severity === 'error' || m.severity === 'fatal') {
      // FHIR.js reports crashes (null) before the strict walk: keep those unless the walk explained them
      if (m.message.startsWith('FHIR.js validator crashed') && strict.errors.length) continue;
      if (noisy(loc)) continue;
      const message = / not found in value set$/.test(m.message) ? explainCode({ ...m, location: loc }) : m.message;
      errors.push({ location: loc, message: friendly[message] || message });
    } else if (m.severity === 'warning') warnings.push({ location: loc, message: m.message });
  }
  errors.push(...strict.errors);
  const seen = new Set();
  const unique = errors.filter((e) => {
    const k = `${e.location}\u0000${e.message}`;
    return seen.has(k) ? false : seen.add(k);
  });
  return { errors: unique, warnings };
}

// One result per resource: a Bundle itself (its entries' resources taken out), then each entry.
function validateTree(resource, label, out) {
  if (!isObject(resource) || typeof resource.resourceType !== 'string') {
    out.push({ label, name: '?/?', errors: [{ location: '', message: 'not a FHIR resource (no "resourceType")' }], warnings: [] });
    return;
  }
  const name = `${resource.resourceType}/${resource.id ?? '(no id)'}`;
  if (resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    const shallow = { ...resource, entry: resource.entry.map((e) => (isObject(e) ? Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'resource')) : e)) };
    const own = validateOne(shallow, { bundleRules: false });
    const rules = new Strict();
    rules.bundle(resource, 'Bundle'); // bdl-* and fullUrl rules need the entries' resources
    own.errors.push(...rules.errors);
    own.warnings.push(...rules.warnings);
    out.push({ label, name, ...own });
    resource.entry.forEach((e, i) => {
      if (isObject(e) && e.resource !== undefined) validateTree(e.resource, `${label}#entry[${i}]`, out);
    });
  } else out.push({ label, name, ...validateOne(resource) });
}

function jsonFiles(target) {
  const st = fs.statSync(target);
  if (!st.isDirectory()) return [target];
  return fs
    .readdirSync(target, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((d) => {
      const p = path.join(target, d.name);
      if (d.isDirectory()) return jsonFiles(p);
      return d.name.endsWith('.json') ? [p] : [];
    });
}

function validatePaths(targets) {
  const results = [];
  for (const target of targets) {
    let files;
    try {
      files = jsonFiles(target);
    } catch (e) {
      results.push({ file: target, label: target, name: '-', errors: [{ location: '', message: `cannot read: ${e.message}` }], warnings: [] });
      continue;
    }
    for (const file of files) {
      let resource;
      try {
        resource = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        results.push({ file, label: file, name: '-', errors: [{ location: '', message: `invalid JSON: ${e.message}` }], warnings: [] });
        continue;
      }
      const out = [];
      validateTree(resource, file, out);
      results.push(...out.map((r) => ({ file, ...r })));
    }
  }
  return results;
}

const describe = (list) => list.map((m) => (m.location ? `${m.location}: ${m.message}` : m.message)).join('; ');

function report(results, showWarnings) {
  let valid = 0;
  let invalid = 0;
  for (const r of results) {
    if (r.errors.length) {
      invalid++;
      console.log(`FAIL ${r.label} ${r.name}: ${describe(r.errors)}`);
    } else {
      valid++;
      console.log(`ok ${r.label} ${r.name}`);
    }
    if (showWarnings && r.warnings.length) console.log(`  warnings: ${describe(r.warnings)}`);
  }
  console.log(`fhir: ${valid} valid, ${invalid} invalid`);
  return { valid, invalid };
}

// Self-check: every good fixture passes, every bad fixture fails with the problem named in
// fixtures/fhir-bad/expected.tsv (`file<TAB>text the messages must contain`).
function selfCheck() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const goodDir = path.join(here, 'fixtures', 'fhir-good');
  const badDir = path.join(here, 'fixtures', 'fhir-bad');
  let passed = 0;
  let failed = 0;
  const check = (ok, what) => {
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  };
  const good = validatePaths([goodDir]);
  check(good.length > 0, `good fixtures found (${good.length} resources)`);
  for (const r of good) check(r.errors.length === 0, `good ${path.relative(here, r.label)} ${r.name} is valid${r.errors.length ? `: ${describe(r.errors)}` : ''}`);
  const expected = new Map(
    fs
      .readFileSync(path.join(badDir, 'expected.tsv'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => l.split('\t').map((x) => x.trim())),
  );
  const badFiles = jsonFiles(badDir);
  check(badFiles.length > 0, `bad fixtures found (${badFiles.length} files)`);
  for (const file of badFiles) {
    const name = path.relative(badDir, file);
    const results = validatePaths([file]);
    const messages = results.map((r) => `${r.name} ${describe(r.errors)}`).join(' | ');
    const want = expected.get(name);
    const failedAny = results.some((r) => r.errors.length > 0);
    const ok = failedAny && want !== undefined && messages.includes(want);
    check(ok, `bad ${name} fails${want === undefined ? ' (no line in expected.tsv)' : ` naming "${want}"`}: ${messages}`);
  }
  const stale = [...expected.keys()].filter((name) => !fs.existsSync(path.join(badDir, name)));
  check(stale.length === 0, `expected.tsv names only existing fixtures${stale.length ? `: missing ${stale.join(', ')}` : ''}`);
  console.log(`fhir-self-check: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

function main(argv) {
  if (argv.includes('--self-check')) return selfCheck();
  const showWarnings = argv.includes('--warnings');
  const targets = argv.filter((a) => a !== '--warnings');
  if (!targets.length || targets.some((a) => a.startsWith('--'))) {
    console.error('usage: node validate-fhir.mjs [--warnings] <dir-or-file>... | --self-check');
    return 2;
  }
  const results = validatePaths(targets);
  const { invalid } = report(results, showWarnings);
  if (results.length === 0) {
    console.log('fhir: no resources found');
    return 1;
  }
  return invalid > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
