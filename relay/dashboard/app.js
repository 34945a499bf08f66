// The consortium dashboard: reads the relay's /v1 API with an operator token and refreshes every
// 10 seconds. Text from the API is always set as text, never as HTML. Every string the page shows
// comes from a message catalogue (i18n/zh-CN.json, i18n/en.json), chosen by the browser's
// languages (Chinese first) or the switch in the header; times are shown in UTC+8.
'use strict';

const REFRESH_MS = 10000;
const LANGUAGES = ['zh-CN', 'en'];
const ZONE = 'Asia/Shanghai';
const state = { token: null, organization: null, timer: null, names: {}, language: 'zh-CN', messages: {} };

// The catalogue's text for `key`, with `{name}` replaced by `params.name`.
function t(key, params) {
  const text = state.messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params?.[name] ?? ''));
}

function chooseLanguage() {
  const saved = localStorage.getItem('yilian-language');
  if (LANGUAGES.includes(saved)) return saved;
  for (const wanted of navigator.languages || []) {
    if (wanted.toLowerCase().startsWith('zh')) return 'zh-CN';
    if (wanted.toLowerCase().startsWith('en')) return 'en';
  }
  return 'zh-CN';
}

async function loadLanguage(language) {
  const response = await fetch(`/dashboard/i18n/${language}.json`);
  state.messages = await response.json();
  state.language = language;
  document.documentElement.lang = language;
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll('[data-i18n-aria]')) node.setAttribute('aria-label', t(node.dataset.i18nAria));
  document.title = t('title');
}

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? '' : String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function table(target, headings, rows, empty) {
  const t = $(target);
  t.replaceChildren(el('tr', {}, ...headings.map((h) => el('th', {}, h))));
  if (rows.length === 0) {
    t.append(el('tr', {}, el('td', { colspan: String(headings.length) }, empty)));
  }
  for (const cells of rows) t.append(el('tr', {}, ...cells.map((c) => el('td', {}, c))));
}

function when(ms) {
  if (ms == null) return t('when.never');
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 60) return t('when.seconds', { n: Math.max(seconds, 0) });
  if (seconds < 3600) return t('when.minutes', { n: Math.round(seconds / 60) });
  if (seconds < 86400) return t('when.hours', { n: Math.round(seconds / 3600) });
  return new Date(ms).toLocaleDateString(state.language, { timeZone: ZONE });
}

// An organization by its name (the id stays in the tooltip).
function organization(id) {
  return el('span', { title: id }, state.names[id] || id);
}

function percent(rate) {
  return rate == null ? '—' : `${Math.round(rate * 100)}%`;
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) throw new Unauthorized(body.error || t('token.refused'));
  if (!response.ok) throw new Error(`${path}: ${body.error || response.status}`);
  return body;
}

function showProblem(message) {
  const p = $('problem');
  p.textContent = message;
  p.hidden = !message;
}

function askForToken(message) {
  sessionStorage.removeItem('yilian-token');
  state.token = null;
  $('panels').hidden = true;
  $('login').hidden = false;
  showProblem(message);
}

function renderLoop(stats) {
  const loop = stats.closed_loop;
  const figure = (value, label) => el('div', {}, el('b', {}, value), el('span', {}, label));
  $('loop-figures').replaceChildren(
    figure(percent(loop.rate), t('loop.rate')),
    figure(loop.completed_upward, t('loop.completed')),
    figure(loop.closed, t('loop.closed')),
    figure(loop.awaiting, t('loop.awaiting')),
    figure(loop.open_loops.length, t('loop.open')),
  );
  // Bars: completed upward referrals per month, the closed part dark; the line: the rate.
  const chart = $('loop-chart');
  chart.replaceChildren();
  const months = stats.months;
  const top = Math.max(1, ...months.map((m) => m.completed_upward));
  const width = 640 / Math.max(months.length, 1);
  const points = [];
  months.forEach((m, i) => {
    const x = i * width + width * 0.2;
    const barWidth = width * 0.6;
    const h = (m.completed_upward / top) * 150;
    const closed = (m.closed / top) * 150;
    chart.append(svg('rect', { class: 'bar-completed', x, y: 170 - h, width: barWidth, height: h }));
    chart.append(svg('rect', { class: 'bar-closed', x, y: 170 - closed, width: barWidth, height: closed }));
    chart.append(svg('text', { x: x + barWidth / 2, y: 188, 'text-anchor': 'middle' }, m.month));
    if (m.rate != null) points.push(`${x + barWidth / 2},${170 - m.rate * 150}`);
    chart.append(svg('text', { x: x + barWidth / 2, y: 165 - h, 'text-anchor': 'middle' }, percent(m.rate)));
  });
  if (points.length > 1) chart.append(svg('polyline', { class: 'rate', points: points.join(' ') }));

  const byDirection = Object.entries(stats.referrals).flatMap(([direction, statuses]) =>
    Object.entries(statuses).map(([status, n]) => [t(`direction.${direction}`), t(`status.${status}`), String(n)]));
  const a = stats.acceptance;
  byDirection.push([t('acceptance.accepted'), t('acceptance.hours', { median: a.median_hours ?? '—', max: a.max_hours ?? '—' }), String(a.accepted)]);
  table('acceptance', [t('acceptance.referrals'), t('acceptance.status'), t('acceptance.count')], byDirection, t('acceptance.empty'));
  table('overdue', [t('overdue.team'), t('overdue.overdue'), t('overdue.over_30')],
    stats.overdue_follow_ups.map((o) => [el('span', { title: o.team_id }, o.team_name), String(o.overdue), String(o.overdue_over_30_days)]),
    t('overdue.empty'));
}

function renderWorklist(items) {
  table('worklist', ['worklist.resident', 'worklist.direction', 'worklist.route', 'worklist.status', 'worklist.urgency', 'worklist.requested'].map((k) => t(k)),
    items.map((r) => [
      el('span', { title: r.patient_id }, r.patient_name),
      `${t(`direction.${r.direction}`)} (${t(`side.${r.side}`)})`,
      el('span', {}, organization(r.from_organization_id), ' → ', organization(r.to_organization_id)),
      el('span', { class: `status ${r.status}` }, t(`status.${r.status}`)),
      el('span', { class: r.urgency }, t(`urgency.${r.urgency}`)),
      new Date(r.created_at).toLocaleString(state.language, { timeZone: ZONE }),
    ]),
    t('worklist.empty'));
}

function renderDevices(devices) {
  table('devices', ['devices.device', 'devices.practitioner', 'devices.organization', 'devices.last_sync', 'devices.pending', 'devices.state'].map((k) => t(k)),
    devices.map((d) => [
      d.device_id,
      d.practitioner_id,
      organization(d.organization_id),
      when(d.last_sync_at),
      el('span', { class: d.pending_changes > 0 ? 'lagging' : '' }, String(d.pending_changes)),
      el('span', { class: d.revoked_at ? 'status revoked' : 'status' }, t(d.revoked_at ? 'devices.revoked' : 'devices.active')),
    ]),
    t('devices.empty'));
}

async function refresh() {
  try {
    const org = encodeURIComponent(state.organization);
    const [stats, worklist, devices] = await Promise.all([
      api(`/v1/organizations/${org}/statistics`),
      api(`/v1/organizations/${org}/worklist`),
      api('/v1/devices'),
    ]);
    renderLoop(stats);
    renderWorklist(worklist);
    renderDevices(devices);
    $('updated').textContent = t('updated', { time: new Date().toLocaleTimeString(state.language, { timeZone: ZONE }) });
    showProblem('');
  } catch (e) {
    if (e instanceof Unauthorized) askForToken(e.message);
    else showProblem(e.message);
  }
}

async function start() {
  try {
    const organizations = await api('/v1/organizations');
    state.names = Object.fromEntries(organizations.map((o) => [o.id, o.name]));
    const select = $('organization');
    select.replaceChildren(...organizations.map((o) => el('option', { value: o.id, title: o.id }, o.name)));
    // A hospital first: it receives the upward referrals.
    const hospital = organizations.find((o) => o.kind === 'county_hospital' || o.kind === 'tertiary_hospital');
    state.organization = (hospital || organizations[0] || {}).id;
    if (state.organization) select.value = state.organization;
    select.onchange = () => { state.organization = select.value; refresh(); };
    $('login').hidden = true;
    $('panels').hidden = false;
    await refresh();
    clearInterval(state.timer);
    state.timer = setInterval(refresh, REFRESH_MS);
  } catch (e) {
    if (e instanceof Unauthorized) askForToken(e.message);
    else showProblem(e.message);
  }
}

async function init() {
  await loadLanguage(chooseLanguage());
  const languages = $('language');
  languages.value = state.language;
  languages.onchange = async () => {
    localStorage.setItem('yilian-language', languages.value);
    await loadLanguage(languages.value);
    if (state.token && state.organization) refresh();
  };
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromUrl) {
    sessionStorage.setItem('yilian-token', fromUrl);
    history.replaceState(null, '', location.pathname);
  }
  state.token = sessionStorage.getItem('yilian-token');
  $('login').onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem('yilian-token', $('token').value.trim());
    state.token = $('token').value.trim();
    start();
  };
  if (state.token) start();
  else askForToken('');
}

init();
