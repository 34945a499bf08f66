// The consortium dashboard: reads the relay's /v1 API with an operator token and refreshes every
// 10 seconds. Text from the API is always set as text, never as HTML.
'use strict';

const REFRESH_MS = 10000;
const state = { token: null, organization: null, timer: null };

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
  if (ms == null) return 'never';
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(ms).toLocaleDateString('zh-CN');
}

function percent(rate) {
  return rate == null ? '—' : `${Math.round(rate * 100)}%`;
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) throw new Unauthorized(body.error || 'the token was refused');
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
    figure(percent(loop.rate), 'closed-loop rate'),
    figure(loop.completed_upward, 'upward referrals completed'),
    figure(loop.closed, 'closed'),
    figure(loop.awaiting, 'within their 14 days'),
    figure(loop.open_loops.length, 'open loops to chase'),
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
    Object.entries(statuses).map(([status, n]) => [direction, status, String(n)]));
  const a = stats.acceptance;
  byDirection.push(['accepted by this organization', `median ${a.median_hours ?? '—'} h, longest ${a.max_hours ?? '—'} h`, String(a.accepted)]);
  table('acceptance', ['referrals', 'status', 'count'], byDirection, 'no referrals in the period');
  table('overdue', ['team', 'overdue', 'over 30 days'],
    stats.overdue_follow_ups.map((t) => [`${t.team_name} (${t.team_id})`, String(t.overdue), String(t.overdue_over_30_days)]),
    'no family-doctor team here');
}

function renderWorklist(items) {
  table('worklist', ['resident', 'direction', 'from → to', 'status', 'urgency', 'requested'],
    items.map((r) => [
      r.patient_name,
      `${r.direction} (${r.side})`,
      `${r.from_organization_id} → ${r.to_organization_id}`,
      el('span', { class: `status ${r.status}` }, r.status),
      el('span', { class: r.urgency }, r.urgency),
      new Date(r.created_at).toLocaleString('zh-CN'),
    ]),
    'no referrals');
}

function renderDevices(devices) {
  table('devices', ['device', 'practitioner', 'organization', 'last sync', 'changes to pull', 'state'],
    devices.map((d) => [
      d.device_id,
      d.practitioner_id,
      d.organization_id,
      when(d.last_sync_at),
      el('span', { class: d.pending_changes > 0 ? 'lagging' : '' }, String(d.pending_changes)),
      el('span', { class: d.revoked_at ? 'status revoked' : 'status' }, d.revoked_at ? 'revoked' : 'active'),
    ]),
    'no devices enrolled');
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
    $('updated').textContent = `updated ${new Date().toLocaleTimeString('zh-CN')}`;
    showProblem('');
  } catch (e) {
    if (e instanceof Unauthorized) askForToken(e.message);
    else showProblem(e.message);
  }
}

async function start() {
  try {
    const organizations = await api('/v1/organizations');
    const select = $('organization');
    select.replaceChildren(...organizations.map((o) => el('option', { value: o.id }, `${o.name} (${o.id})`)));
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

function init() {
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
