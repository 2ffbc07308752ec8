// admin.js: the admin pages on /admin: the KPI dashboard (charts in inline
// SVG), teams with business hours and SLA, intents, bot thresholds, canned
// replies, agents and users (roles, enabling, password resets), and the
// audit log. Each section reads its own endpoint and says so plainly when
// the server does not offer it yet.
import { api, toast, unavailable, boot, h, icon, icons } from './staff.js';
import { fmtAgo, fmtDuration } from './lib.js';

const SECTIONS = [
  ['dashboard', 'Dashboard', icons.chart],
  ['teams', 'Teams & hours', icons.person],
  ['intents', 'Intents', icons.bot],
  ['thresholds', 'Thresholds', icons.alert],
  ['canned', 'Canned replies', icons.chat],
  ['people', 'Agents & users', icons.person],
  ['integrations', 'Webhooks & retention', icons.refresh],
  ['audit', 'Audit log', icons.book],
];
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const el = {};

boot({ title: 'Admin', role: 'admin', current: '/admin', render });

function render(user, main) {
  el.me = user;
  el.nav = h('nav', { class: 'sidenav', 'aria-label': 'Admin sections' });
  el.body = h('div', { id: 'admin-body' });
  for (const [key, label, ic] of SECTIONS) {
    el.nav.append(h('button', { type: 'button', dataset: { key }, onclick: () => show(key) }, icon(ic), label));
  }
  main.append(h('div', { class: 'page' }, h('div', { class: 'admin' }, el.nav, el.body)));
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));
  show(location.hash.slice(1));
}

function show(key) {
  if (!SECTIONS.some(([k]) => k === key)) key = 'dashboard';
  if (location.hash.slice(1) !== key) history.replaceState(null, '', `#${key}`);
  for (const b of el.nav.children) b.setAttribute('aria-current', String(b.dataset.key === key));
  el.body.replaceChildren(h('p', { class: 'empty', id: 'admin-loading' }, 'Loading…'));
  ({ dashboard, teams, intents, thresholds, canned, people, integrations, audit })[key]();
}

function head(title, sub, ...actions) {
  return h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, title), sub ? h('p', {}, sub) : null), h('div', { class: 'btn-row' }, actions));
}

// ---- dashboard -----------------------------------------------------------

const isoDay = (d) => d.toISOString().slice(0, 10);

async function dashboard() {
  const to = new Date();
  const from = new Date(Date.now() - 13 * 86400e3);
  const fromIn = h('input', { type: 'date', class: 'input', id: 'kpi-from', value: isoDay(from), 'aria-label': 'From' });
  const toIn = h('input', { type: 'date', class: 'input', id: 'kpi-to', value: isoDay(to), 'aria-label': 'To' });
  const csv = h('a', { class: 'btn', href: '#', download: 'tandem-kpis.csv' }, 'Download CSV');
  const out = h('div', { id: 'kpi-out' });
  const load = async () => {
    // The range is whole days in the browser's time zone.
    const f = new Date(`${fromIn.value}T00:00:00`);
    const t = new Date(`${toIn.value}T00:00:00`);
    t.setDate(t.getDate() + 1);
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    const q = `from=${encodeURIComponent(f.toISOString())}&to=${encodeURIComponent(t.toISOString())}&tz=${encodeURIComponent(tz)}`;
    csv.href = `/api/v1/metrics/summary?${q}&format=csv`;
    out.replaceChildren(h('p', { class: 'empty', id: 'kpi-loading' }, 'Loading…'));
    const r = await api('GET', `/api/v1/metrics/summary?${q}`);
    if (!r.ok) {
      csv.hidden = true;
      out.replaceChildren(unavailable('the KPI summary', r));
      return;
    }
    csv.hidden = false;
    out.replaceChildren(...kpis(r.data));
  };
  const form = h('form', { class: 'range' }, fromIn, h('span', { class: 'muted' }, 'to'), toIn, h('button', { type: 'submit', class: 'btn primary' }, 'Apply'), csv);
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  el.body.replaceChildren(head('Dashboard', 'How the bot and the team are doing over the chosen days.', form), out);
  await load();
}

const pct = (x) => (Number.isFinite(x) ? `${Math.round(x * 1000) / 10}%` : '—');
const dur = (x) => (Number.isFinite(x) ? fmtDuration(x) : '—');

function kpis(m) {
  const card = (label, value, sub) => h('div', { class: 'card kpi' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), sub ? h('div', { class: 'sub' }, sub) : null);
  const p = (o) => (o ? `p50 ${dur(o.p50)} · p90 ${dur(o.p90)}` : '');
  const csat = m.csat || {};
  const cards = h('div', { class: 'kpis' },
    card('Conversations', String(m.conversations ?? 0), `${m.handoffs ?? 0} handed to a person`),
    card('Bot containment', pct(m.containment_rate), 'never handed to a person'),
    card('Handoff rate', pct(m.handoff_rate), 'of conversations'),
    card('First response', dur(m.first_response_seconds?.p50), p(m.first_response_seconds)),
    card('Queue wait', dur(m.queue_wait_seconds?.p50), p(m.queue_wait_seconds)),
    card('Resolution time', dur(m.resolution_seconds?.p50), p(m.resolution_seconds)),
    card('CSAT', Number.isFinite(csat.average) ? `${csat.average.toFixed(2)} / 5` : '—', `${csat.responses ?? 0} ratings`));
  const days = m.per_day || [];
  const reasons = (m.handoffs_by_reason || []).slice().sort((a, b) => b.count - a.count);
  const dist = csat.distribution || [];
  const chart = (title, svg, legend) => h('section', { class: 'card chart' },
    h('div', { class: 'card-head' }, h('h2', {}, title)), h('div', { class: 'card-body' }, svg), legend || null);
  return [cards, h('div', { class: 'charts' },
    chart('Conversations per day', stackedBars(days.map((d) => ({ label: d.date.slice(5), a: d.contained ?? 0, b: (d.conversations ?? 0) - (d.contained ?? 0) }))),
      h('div', { class: 'legend' }, h('span', {}, h('i'), 'contained by the bot'), h('span', {}, h('i', { class: 'alt' }), 'with a person'))),
    chart('Handoffs by reason', hbars(reasons.map((x) => ({ label: x.reason.replace(/_/g, ' '), value: x.count })))),
    chart('Waits (p50 and p90)', groupedBars([
      { label: 'First response', a: m.first_response_seconds?.p50, b: m.first_response_seconds?.p90 },
      { label: 'Queue wait', a: m.queue_wait_seconds?.p50, b: m.queue_wait_seconds?.p90 },
      { label: 'Resolution', a: m.resolution_seconds?.p50, b: m.resolution_seconds?.p90 },
    ]), h('div', { class: 'legend' }, h('span', {}, h('i'), 'p50'), h('span', {}, h('i', { class: 'alt' }), 'p90'))),
    chart('CSAT ratings', hbars([5, 4, 3, 2, 1].map((s) => ({ label: '★'.repeat(s), value: dist[s - 1] ?? 0 })))))];
}

// ---- inline SVG charts ---------------------------------------------------

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(w, hgt, max, fmt, pad) {
  const g = s('g', {});
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (hgt - pad.t - pad.b) * (1 - i / 4);
    g.append(s('line', { class: i ? 'grid' : 'axis', x1: pad.l, x2: w - pad.r, y1: y, y2: y }));
    g.append(s('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end' }, fmt((max * i) / 4)));
  }
  return g;
}

function svgBox(w, hgt, label) {
  return s('svg', { viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': label });
}

function stackedBars(rows) {
  const w = 560; const hgt = 240; const pad = { l: 36, r: 8, t: 10, b: 28 };
  // Counts: at least 4, so the four grid steps are whole numbers.
  const max = Math.max(4, Math.ceil(niceMax(Math.max(0, ...rows.map((r) => r.a + r.b))) / 4) * 4);
  const svg = svgBox(w, hgt, rows.map((r) => `${r.label}: ${r.a + r.b}`).join(', ') || 'no data');
  svg.append(frame(w, hgt, max, (v) => Math.round(v), pad));
  const iw = (w - pad.l - pad.r) / Math.max(rows.length, 1);
  const y = (v) => (hgt - pad.b) - (hgt - pad.t - pad.b) * (v / max);
  rows.forEach((r, i) => {
    const x = pad.l + i * iw + iw * 0.18;
    const bw = iw * 0.64;
    svg.append(s('rect', { class: 'bar', x, width: bw, y: y(r.a), height: y(0) - y(r.a), rx: 2 }, s('title', {}, `${r.label}: ${r.a} contained`)));
    svg.append(s('rect', { class: 'bar alt', x, width: bw, y: y(r.a + r.b), height: y(r.a) - y(r.a + r.b), rx: 2 }, s('title', {}, `${r.label}: ${r.b} with a person`)));
    if (rows.length <= 16 || i % 2 === 0) svg.append(s('text', { x: x + bw / 2, y: hgt - 10, 'text-anchor': 'middle' }, r.label));
  });
  if (!rows.length) svg.append(s('text', { x: w / 2, y: hgt / 2, 'text-anchor': 'middle' }, 'No conversations in this period'));
  return svg;
}

function hbars(rows) {
  const w = 560; const rowH = 30; const pad = { l: 150, r: 40, t: 6, b: 6 };
  const hgt = Math.max(rows.length, 1) * rowH + pad.t + pad.b;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const svg = svgBox(w, hgt, rows.map((r) => `${r.label}: ${r.value}`).join(', ') || 'no data');
  rows.forEach((r, i) => {
    const y = pad.t + i * rowH;
    const bw = ((w - pad.l - pad.r) * r.value) / max;
    svg.append(s('text', { x: pad.l - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, r.label));
    svg.append(s('rect', { class: 'bar', x: pad.l, y: y + 6, width: Math.max(bw, r.value ? 2 : 0), height: rowH - 12, rx: 3 }));
    svg.append(s('text', { x: pad.l + bw + 6, y: y + rowH / 2 + 4 }, String(r.value)));
  });
  if (!rows.length) svg.append(s('text', { x: w / 2, y: hgt / 2 + 4, 'text-anchor': 'middle' }, 'No handoffs in this period'));
  return svg;
}

function groupedBars(rows) {
  const w = 560; const hgt = 240; const pad = { l: 52, r: 8, t: 10, b: 28 };
  const max = niceMax(Math.max(1, ...rows.flatMap((r) => [r.a || 0, r.b || 0])));
  const svg = svgBox(w, hgt, rows.map((r) => `${r.label}: p50 ${dur(r.a)}, p90 ${dur(r.b)}`).join('; '));
  svg.append(frame(w, hgt, max, (v) => fmtDuration(v), pad));
  const iw = (w - pad.l - pad.r) / rows.length;
  const y = (v) => (hgt - pad.b) - (hgt - pad.t - pad.b) * ((v || 0) / max);
  rows.forEach((r, i) => {
    const x = pad.l + i * iw + iw * 0.2;
    const bw = iw * 0.28;
    svg.append(s('rect', { class: 'bar', x, width: bw, y: y(r.a), height: y(0) - y(r.a), rx: 2 }, s('title', {}, `p50 ${dur(r.a)}`)));
    svg.append(s('rect', { class: 'bar alt', x: x + bw + 4, width: bw, y: y(r.b), height: y(0) - y(r.b), rx: 2 }, s('title', {}, `p90 ${dur(r.b)}`)));
    svg.append(s('text', { x: x + bw + 2, y: hgt - 10, 'text-anchor': 'middle' }, r.label));
  });
  return svg;
}

// ---- teams and business hours -------------------------------------------

async function teams() {
  const [r, agents] = await Promise.all([api('GET', '/api/v1/teams'), api('GET', '/api/v1/agents')]);
  const name = h('input', { class: 'input', id: 'team-name', placeholder: 'billing', required: true });
  const add = h('form', { class: 'inline-form' }, h('div', { class: 'field' }, h('label', { for: 'team-name' }, 'New team'), name), h('button', { type: 'submit', class: 'btn primary' }, 'Create'));
  add.addEventListener('submit', async (e) => {
    e.preventDefault();
    const res = await api('POST', '/api/v1/teams', { name: name.value.trim(), timezone: Intl.DateTimeFormat().resolvedOptions().timeZone });
    if (!res.ok) { toast(`Could not create the team: ${res.error?.message}`, 'bad'); return; }
    toast('Team created.', 'ok');
    teams();
  });
  if (!r.ok) { el.body.replaceChildren(head('Teams & hours'), unavailable('teams', r)); return; }
  const list = r.data.teams || [];
  el.body.replaceChildren(head('Teams & hours', 'Escalations go to a team’s queue. Outside its hours customers are told honestly and may leave a contact.', add),
    list.length ? h('div', {}, list.map((t) => teamCard(t, agents.data?.agents || []))) : h('div', { class: 'card empty' }, 'No teams yet: escalations go to any agent.'));
}

function teamCard(t, agents) {
  const tz = h('input', { class: 'input', value: t.timezone || 'UTC', 'aria-label': `Time zone of ${t.name}` });
  const sla = h('input', { class: 'input', type: 'number', min: 0, step: 1, value: Math.round((t.sla_seconds || 0) / 60), 'aria-label': `SLA of ${t.name} in minutes` });
  const hours = {};
  const grid = h('div', { class: 'hours' });
  for (const d of DAYS) {
    hours[d] = h('input', { class: 'input', value: t.hours?.[d] || '', placeholder: 'closed', 'aria-label': `${t.name} hours on ${d}` });
    grid.append(h('span', { class: 'label' }, d[0].toUpperCase() + d.slice(1)), hours[d]);
  }
  const save = h('button', { type: 'submit', class: 'btn primary small' }, 'Save');
  const form = h('form', {},
    h('div', { class: 'grid2' },
      h('div', {}, h('div', { class: 'field' }, h('label', {}, 'Time zone'), tz),
        h('div', { class: 'field' }, h('label', {}, 'SLA: flag waits longer than (minutes)'), sla),
        h('p', { class: 'hint' }, 'Hours like 09:00-17:00, or 09:00-12:00,13:00-17:00. Leave every day empty for always open.')),
      h('div', {}, h('p', { class: 'label' }, 'Business hours'), grid)),
    h('div', { class: 'btn-row' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { timezone: tz.value.trim(), sla_seconds: Math.max(0, Math.round(Number(sla.value) * 60)), hours: {} };
    for (const d of DAYS) if (hours[d].value.trim()) body.hours[d] = hours[d].value.trim();
    const res = await api('PUT', `/api/v1/teams/${encodeURIComponent(t.name)}`, body);
    toast(res.ok ? `Saved ${t.name}.` : `Could not save: ${res.error?.message}`, res.ok ? 'ok' : 'bad');
  });
  const members = t.members || [];
  const pick = h('select', { class: 'input', 'aria-label': `Add a member to ${t.name}` }, h('option', { value: '' }, 'Add an agent…'),
    agents.filter((a) => !members.some((m) => m.id === a.id)).map((a) => h('option', { value: a.id }, a.name || a.email)));
  pick.style.width = 'auto';
  pick.addEventListener('change', async () => {
    if (!pick.value) return;
    const res = await api('PUT', `/api/v1/teams/${encodeURIComponent(t.name)}/members/${encodeURIComponent(pick.value)}`);
    if (!res.ok) toast(`Could not add: ${res.error?.message}`, 'bad');
    teams();
  });
  return h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', {}, t.name), h('span', { class: 'badge' }, `${members.length} ${members.length === 1 ? 'member' : 'members'}`)),
    h('div', { class: 'card-body' }, form,
      h('h3', { class: 'section-title' }, 'Members'),
      h('div', { class: 'btn-row' }, members.map((m) => h('span', { class: 'badge accent' }, m.name || m.email,
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Remove ${m.name || m.email}`, onclick: async () => {
          const res = await api('DELETE', `/api/v1/teams/${encodeURIComponent(t.name)}/members/${encodeURIComponent(m.id)}`);
          if (!res.ok) toast(`Could not remove: ${res.error?.message}`, 'bad');
          teams();
        } }, '×'))), pick)));
}

// ---- intents ---------------------------------------------------------------

async function intents() {
  const r = await api('GET', '/api/v1/intents');
  if (!r.ok) { el.body.replaceChildren(head('Intents'), unavailable('intents', r)); return; }
  const list = (r.data.intents || []).map((x) => ({ ...x }));
  const box = h('div', {});
  const draw = () => box.replaceChildren(...list.map((x, i) => intentCard(x, () => { list.splice(i, 1); draw(); })));
  const addBtn = h('button', { type: 'button', class: 'btn', onclick: () => { list.push({ name: '', examples: [], action: 'answer', priority: 0 }); draw(); } }, 'Add intent');
  const save = h('button', { type: 'button', class: 'btn primary', onclick: async () => {
    const res = await api('PUT', '/api/v1/intents', { intents: list.filter((x) => x.name.trim()) });
    toast(res.ok ? 'Intents saved; the classifier is retrained.' : `Could not save: ${res.error?.message}`, res.ok ? 'ok' : 'bad');
    if (res.ok) intents();
  } }, 'Save all');
  draw();
  el.body.replaceChildren(head('Intents', 'What customers ask about, learned from example phrases. “Escalate” sends the intent straight to a person.', addBtn, save), h('div', { class: 'card card-body' }, box));
}

function intentCard(x, remove) {
  const name = h('input', { class: 'input', value: x.name, disabled: x.builtin, 'aria-label': 'Intent name' });
  name.addEventListener('input', () => { x.name = name.value; });
  name.style.width = '220px';
  const action = h('select', { class: 'input', 'aria-label': 'Action' }, h('option', { value: 'answer' }, 'Answer from knowledge'), h('option', { value: 'escalate' }, 'Escalate to a person'));
  action.value = x.action || 'answer';
  action.style.width = 'auto';
  action.addEventListener('change', () => { x.action = action.value; });
  const team = h('input', { class: 'input', value: x.team || '', placeholder: 'team (optional)', 'aria-label': 'Team' });
  team.style.width = '160px';
  team.addEventListener('input', () => { x.team = team.value.trim(); });
  const ex = h('textarea', { class: 'input', rows: 3, 'aria-label': 'Examples, one per line' }, (x.examples || []).join('\n'));
  ex.addEventListener('input', () => { x.examples = ex.value.split('\n').map((l) => l.trim()).filter(Boolean); });
  return h('div', { class: 'intent' },
    h('div', { class: 'intent-head' }, name, action, team, x.builtin ? h('span', { class: 'badge' }, 'built in') : h('button', { type: 'button', class: 'btn small danger', onclick: remove }, 'Remove'),
      h('span', { class: 'muted small' }, `${(x.examples || []).length} examples`)),
    ex);
}

// ---- thresholds ------------------------------------------------------------

async function thresholds() {
  const r = await api('GET', '/api/v1/bot/policy');
  if (!r.ok) { el.body.replaceChildren(head('Thresholds'), unavailable('the bot’s thresholds', r)); return; }
  const p = r.data;
  const num = (id, v, attrs) => h('input', { class: 'input', id, type: 'number', value: v ?? '', ...attrs });
  const answer = num('th-answer', p.answer_threshold, { min: 0, max: 1, step: 0.01 });
  const intent = num('th-intent', p.intent_threshold, { min: 0, max: 1, step: 0.01 });
  const low = num('th-low', p.low_turns, { min: 1, max: 10, step: 1 });
  const team = h('input', { class: 'input', id: 'th-team', value: p.default_team || '' });
  const per = h('textarea', { class: 'input', id: 'th-per', rows: 4, placeholder: 'refund_status=0.7' },
    Object.entries(p.intent_thresholds || {}).map(([k, v]) => `${k}=${v}`).join('\n'));
  const field = (id, label, input, hint) => h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
  const form = h('form', { class: 'card card-body' },
    h('div', { class: 'grid2' },
      field('th-answer', 'Answer threshold', answer, 'Least retrieval confidence (0–1) at which the bot answers.'),
      field('th-intent', 'Intent threshold', intent, 'Least classifier confidence at which an intent’s action is taken.'),
      field('th-low', 'Low-confidence turns before a handoff', low, 'The turns before ask the customer to clarify.'),
      field('th-team', 'Default team', team, 'Receives escalations whose intent names no team.')),
    field('th-per', 'Per-intent answer thresholds', per, 'One per line: intent=threshold.'),
    h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn primary' }, 'Save')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const perIntent = {};
    for (const line of per.value.split('\n')) {
      const [k, v] = line.split('=').map((x) => x && x.trim());
      if (k && v) perIntent[k] = Number(v);
    }
    const res = await api('PUT', '/api/v1/bot/policy', { answer_threshold: Number(answer.value), intent_threshold: Number(intent.value),
      low_turns: Number(low.value), default_team: team.value.trim(), intent_thresholds: perIntent });
    toast(res.ok ? 'Thresholds saved.' : `Could not save: ${res.error?.message}`, res.ok ? 'ok' : 'bad');
  });
  el.body.replaceChildren(head('Thresholds', 'When the bot answers, asks to clarify, or hands off.'), form);
}

// ---- canned replies --------------------------------------------------------

async function canned() {
  const r = await api('GET', '/api/v1/canned-replies?all=true');
  if (!r.ok) { el.body.replaceChildren(head('Canned replies'), unavailable('canned replies', r)); return; }
  const title = h('input', { class: 'input', id: 'cr-title', required: true });
  const team = h('input', { class: 'input', id: 'cr-team', placeholder: 'all teams' });
  const text = h('textarea', { class: 'input', id: 'cr-text', rows: 3, required: true });
  const form = h('form', { class: 'card card-body' },
    h('div', { class: 'grid2' }, h('div', { class: 'field' }, h('label', { for: 'cr-title' }, 'Title'), title),
      h('div', { class: 'field' }, h('label', { for: 'cr-team' }, 'Team'), team)),
    h('div', { class: 'field' }, h('label', { for: 'cr-text' }, 'Text'), text),
    h('button', { type: 'submit', class: 'btn primary' }, 'Add canned reply'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const res = await api('POST', '/api/v1/canned-replies', { title: title.value.trim(), team: team.value.trim(), text: text.value.trim() });
    if (!res.ok) { toast(`Could not add: ${res.error?.message}`, 'bad'); return; }
    toast('Added.', 'ok');
    canned();
  });
  const list = r.data.canned_replies || [];
  el.body.replaceChildren(head('Canned replies', 'Ready answers agents insert with one click.'), form,
    h('section', { class: 'card' }, list.length ? h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Title'), h('th', {}, 'Team'), h('th', {}, 'Text'), h('th', {}, ''))),
      h('tbody', {}, list.map((c) => h('tr', {}, h('td', {}, h('strong', {}, c.title)), h('td', {}, c.team || 'all'), h('td', { class: 'small' }, c.text),
        h('td', {}, h('button', { type: 'button', class: 'btn small danger', onclick: async () => {
          if (!confirm(`Delete “${c.title}”?`)) return;
          const res = await api('DELETE', `/api/v1/canned-replies/${encodeURIComponent(c.id)}`);
          if (!res.ok) toast(`Could not delete: ${res.error?.message}`, 'bad');
          canned();
        } }, 'Delete'))))))
      : h('div', { class: 'empty' }, 'No canned replies yet.')));
}

// ---- agents and users ----------------------------------------------------

async function people() {
  const [agents, users] = await Promise.all([api('GET', '/api/v1/agents'), api('GET', '/api/v1/users')]);
  const agentsBox = agents.ok ? h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Agent'), h('th', {}, 'Status'), h('th', {}, 'Teams'), h('th', {}, 'Open chats'), h('th', {}, 'Since'))),
    h('tbody', {}, (agents.data.agents || []).map((a) => h('tr', {},
      h('td', {}, h('strong', {}, a.name || a.email), h('div', { class: 'muted small' }, a.email)),
      h('td', {}, h('span', { class: 'btn-row' }, h('span', { class: `dot ${a.status}` }), a.status)),
      h('td', {}, (a.teams || []).join(', ') || '—'),
      h('td', {}, `${a.open_chats ?? 0} / ${a.capacity ?? '—'}`),
      h('td', {}, a.status_at ? fmtAgo(a.status_at) : '—')))))
    : unavailable('the agent list', agents);
  el.body.replaceChildren(head('Agents & users', 'Who is on the team, and what they may do.'),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Agents')), agentsBox),
    usersCard(users));
}

// ---- users and roles -------------------------------------------------------

const ROLES = [
  ['agent', 'Agent', 'works chats in the console'],
  ['editor', 'Editor', 'edits the knowledge base'],
  ['admin', 'Admin', 'everything, including users and settings'],
];

// usersCard lists the staff accounts with their roles as checkboxes (each
// change is saved at once), enable/disable and password reset, under a form
// that creates an account. Errors are said in the card, not only in a toast.
function usersCard(users) {
  const card = h('section', { class: 'card', id: 'users' }, h('div', { class: 'card-head' }, h('h2', {}, 'Users and roles')));
  if (!users.ok) {
    card.append(h('div', { class: 'card-body' }, unavailable('user management', users),
      users.status === 404 ? h('p', { class: 'small muted' }, 'Meanwhile, create accounts on the server: ',
        h('code', { class: 'mono' }, 'tandem user create --email … --role agent,editor,admin')) : null));
    return card;
  }
  // The live region stays in the page; only its wrapper is hidden, so that
  // screen readers announce each new error.
  const err = h('div', { class: 'notice bad', id: 'users-error', role: 'alert' });
  const errBox = h('div', { class: 'card-body', hidden: true }, err);
  const fail = (what, res) => {
    err.replaceChildren(icon(icons.alert), h('div', {}, `${what}: ${res.error?.message || `HTTP ${res.status}`}`));
    errBox.hidden = false;
    errBox.scrollIntoView({ block: 'nearest' });
  };
  const clear = () => { errBox.hidden = true; };
  const list = users.data.users || [];
  const table = h('table', { class: 'table', id: 'users-table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Roles'), h('th', {}, 'Teams'), h('th', {}, 'Created'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
    h('tbody', {}, list.map((u) => userRow(u, { fail, clear }))));
  card.append(errBox, table, h('div', { class: 'card-body users-new' }, createUserForm()));
  return card;
}

function roleChecks(idPrefix, roles, opts = {}) {
  return h('fieldset', { class: 'role-checks' }, h('legend', { class: opts.legend ? 'label' : 'sr-only' }, opts.legend || 'Roles'),
    ROLES.map(([key, label, hint]) => h('label', { title: opts.lock?.[key] || hint },
      h('input', { type: 'checkbox', id: `${idPrefix}-${key}`, value: key, checked: roles.includes(key), disabled: !!opts.lock?.[key] }), label)));
}

const checkedRoles = (box) => [...box.querySelectorAll('input[type=checkbox]:checked')].map((x) => x.value);

function createUserForm() {
  const email = h('input', { id: 'user-email', type: 'email', autocomplete: 'off', required: true, placeholder: 'sam@example.com' });
  const name = h('input', { id: 'user-name', autocomplete: 'off', maxlength: 100, placeholder: 'Sam Support' });
  const password = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const roles = roleChecks('user-role', ['agent'], { legend: 'Roles' });
  const err = h('p', { class: 'form-error', id: 'user-create-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create user');
  const form = h('form', { id: 'user-create', 'aria-labelledby': 'user-create-title' },
    h('h3', { class: 'section-title', id: 'user-create-title' }, 'New user'),
    h('div', { class: 'grid2 top' },
      h('div', { class: 'field' }, h('label', { for: 'user-email' }, 'Email'), email),
      h('div', { class: 'field' }, h('label', { for: 'user-name' }, 'Display name'), name,
        h('span', { class: 'hint' }, 'Shown to customers when this person replies. Empty: from the e-mail.')),
      h('div', { class: 'field' }, h('label', { for: 'user-password' }, 'Password'), password,
        h('span', { class: 'hint' }, 'At least 8 characters. Tell it to them in person; they can sign in at once.')),
      h('div', { class: 'field' }, roles)),
    err, h('div', { class: 'btn-row' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.hidden = true;
    const body = { email: email.value.trim(), display_name: name.value.trim(), password: password.value, roles: checkedRoles(roles) };
    if (!body.roles.length) {
      err.textContent = 'Choose at least one role.';
      err.hidden = false;
      return;
    }
    submit.disabled = true;
    const res = await api('POST', '/api/v1/users', body);
    submit.disabled = false;
    if (!res.ok) {
      err.textContent = `Could not create the user: ${res.error?.message}`;
      err.hidden = false;
      (res.status === 409 ? email : submit).focus();
      return;
    }
    toast(`Created ${res.data.user.email}.`, 'ok');
    people();
  });
  return form;
}

function userRow(u, { fail, clear }) {
  const self = u.id === el.me?.id;
  const who = u.display_name || u.email;
  const roles = roleChecks(`roles-${u.id}`, u.roles || [], self ? { lock: { admin: 'You cannot remove your own admin role; ask another admin.' } } : {});
  roles.setAttribute('aria-label', `Roles of ${who}`);
  roles.addEventListener('change', async (e) => {
    clear();
    const box = e.target;
    const next = checkedRoles(roles);
    for (const c of roles.querySelectorAll('input')) c.disabled = true;
    const res = await api('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, { roles: next });
    for (const c of roles.querySelectorAll('input')) c.disabled = self && c.value === 'admin';
    box.focus(); // disabling it for the request took the focus away
    if (!res.ok) {
      box.checked = !box.checked;
      fail(`Could not change the roles of ${who}`, res);
      return;
    }
    u.roles = res.data.user.roles;
    toast(self ? 'Your roles are saved.' : `Roles of ${who} saved; they sign in again.`, 'ok');
  });
  const toggle = self ? null : h('button', { type: 'button', class: `btn small${u.disabled ? '' : ' danger'}`, dataset: { action: 'toggle' } },
    u.disabled ? 'Enable' : 'Disable');
  toggle?.addEventListener('click', async () => {
    clear();
    if (!u.disabled && !confirm(`Disable ${who}? They are signed out at once, and their open chats go back to the queue.`)) return;
    const res = await api('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled });
    if (!res.ok) { fail(`Could not ${u.disabled ? 'enable' : 'disable'} ${who}`, res); return; }
    toast(`${who} is ${res.data.user.disabled ? 'disabled' : 'enabled'}.`, 'ok');
    people();
  });
  const reset = h('button', { type: 'button', class: 'btn small', dataset: { action: 'reset' }, onclick: () => resetPassword(u, fail, clear) }, 'Reset password');
  return h('tr', { class: u.disabled ? 'disabled' : null, dataset: { userId: u.id, email: u.email } },
    h('td', {}, h('strong', {}, who), self ? h('span', { class: 'badge accent' }, 'you') : null,
      u.disabled ? h('span', { class: 'badge bad' }, 'disabled') : null,
      h('div', { class: 'muted small' }, u.email)),
    h('td', {}, roles, self ? h('div', { class: 'hint' }, 'Another admin can change your admin role or disable you.') : null),
    h('td', {}, (u.teams || []).join(', ') || '—'),
    h('td', { title: u.created_at ? new Date(u.created_at).toLocaleString() : null }, u.created_at ? fmtAgo(u.created_at) : '—'),
    h('td', {}, h('div', { class: 'btn-row' }, toggle, reset)));
}

function resetPassword(u, fail, clear) {
  clear();
  const who = u.display_name || u.email;
  const self = u.id === el.me?.id;
  const password = h('input', { id: 'reset-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const dlg = h('dialog', { class: 'card', 'aria-labelledby': 'reset-title' });
  const form = h('form', { method: 'dialog', class: 'card-body' },
    h('h2', { id: 'reset-title' }, `New password for ${who}`),
    h('div', { class: 'field' }, h('label', { for: 'reset-password' }, 'New password'), password,
      h('span', { class: 'hint' }, self ? 'At least 8 characters. Your other sessions are signed out.' : 'At least 8 characters. They are signed out everywhere and sign in with the new one.')),
    h('div', { class: 'btn-row' }, h('button', { value: 'ok', class: 'btn primary' }, 'Set password'), h('button', { value: 'cancel', class: 'btn', formnovalidate: true }, 'Cancel')));
  dlg.append(form);
  document.body.append(dlg);
  dlg.addEventListener('close', async () => {
    dlg.remove();
    if (dlg.returnValue !== 'ok') return;
    const res = await api('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, { password: password.value });
    if (!res.ok) { fail(`Could not reset the password of ${who}`, res); return; }
    toast(`New password set for ${who}.`, 'ok');
  });
  dlg.showModal();
}

// ---- webhooks and retention -----------------------------------------------

async function integrations() {
  const [hooks, ret] = await Promise.all([api('GET', '/api/v1/webhooks'), api('GET', '/api/v1/settings/retention')]);
  el.body.replaceChildren(head('Webhooks & retention', 'Signed events for your systems, and how long closed conversations are kept.'),
    ret.ok ? retentionCard(ret.data) : unavailable('the retention setting', ret),
    hooks.ok ? webhooksCard(hooks.data) : unavailable('webhooks', hooks));
}

function retentionCard(r) {
  const days = h('input', { class: 'input', id: 'ret-days', type: 'number', min: 0, max: 36500, step: 1, value: r.days ?? 0 });
  const mode = h('select', { class: 'input', id: 'ret-mode' },
    h('option', { value: 'delete', selected: r.mode === 'delete' }, 'Delete them'),
    h('option', { value: 'anonymise', selected: r.mode === 'anonymise' }, 'Anonymise them (keep the figures)'));
  const last = r.last_run
    ? `Last run ${fmtAgo(r.last_run.at)}: ${r.last_run.deleted || 0} deleted, ${r.last_run.anonymised || 0} anonymised.`
    : 'Not run yet.';
  const form = h('form', { class: 'card-body', id: 'retention-form' },
    h('div', { class: 'grid2' },
      h('div', { class: 'field' }, h('label', { for: 'ret-days' }, 'Closed conversations older than (days)'), days,
        h('span', { class: 'hint' }, '0 keeps everything. Runs daily; tandem retention run runs it now.')),
      h('div', { class: 'field' }, h('label', { for: 'ret-mode' }, 'What happens to them'), mode)),
    h('p', { class: 'hint', id: 'ret-last' }, last),
    h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn primary' }, 'Save')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const res = await api('PUT', '/api/v1/settings/retention', { days: Number(days.value), mode: mode.value });
    toast(res.ok ? 'Retention saved.' : `Could not save: ${res.error?.message}`, res.ok ? 'ok' : 'bad');
  });
  return h('section', { class: 'card', id: 'retention' }, h('div', { class: 'card-head' }, h('h2', {}, 'Retention')), form);
}

function webhooksCard(data) {
  const events = data.events || [];
  const url = h('input', { class: 'input', id: 'wh-url', type: 'url', required: true, placeholder: 'https://crm.example.com/tandem' });
  const desc = h('input', { class: 'input', id: 'wh-desc', maxlength: 500, placeholder: 'CRM sync' });
  const checks = events.map((ev) => h('label', {},
    h('input', { type: 'checkbox', value: ev, checked: ev !== 'message.created' }), ev));
  const secretBox = h('div', { id: 'wh-secret', hidden: true });
  const form = h('form', { class: 'card-body', id: 'webhook-create' },
    h('div', { class: 'grid2' },
      h('div', { class: 'field' }, h('label', { for: 'wh-url' }, 'Endpoint URL'), url),
      h('div', { class: 'field' }, h('label', { for: 'wh-desc' }, 'Description'), desc)),
    h('fieldset', { class: 'role-checks' }, h('legend', { class: 'label' }, 'Events'), checks),
    h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn primary' }, 'Add webhook')),
    secretBox);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const chosen = checks.map((c) => c.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    const res = await api('POST', '/api/v1/webhooks', { url: url.value.trim(), description: desc.value.trim(), events: chosen });
    if (!res.ok) { toast(`Could not add: ${res.error?.message}`, 'bad'); return; }
    await integrations();
    const box = document.getElementById('wh-secret');
    box.hidden = false;
    box.replaceChildren(h('div', { class: 'notice info', role: 'status' }, icon(icons.alert), h('div', {},
      h('strong', {}, 'Signing secret (shown once): '), h('code', { class: 'mono', id: 'wh-secret-value' }, res.data.secret),
      h('p', { class: 'small' }, 'Each request carries Tandem-Signature: v1= HMAC-SHA256 of timestamp + "." + body with this secret.'))));
  });
  const list = data.webhooks || [];
  const table = list.length ? h('table', { class: 'table', id: 'webhooks-table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Endpoint'), h('th', {}, 'Events'), h('th', {}, 'Waiting / failed'), h('th', {}, ''))),
    h('tbody', {}, list.map((w) => h('tr', { dataset: { id: w.id } },
      h('td', {}, h('div', { class: 'mono small' }, w.url), w.description ? h('div', { class: 'small muted' }, w.description) : null),
      h('td', { class: 'small' }, (w.events || []).join(', ')),
      h('td', {}, `${w.pending} / ${w.failed}`),
      h('td', { class: 'btn-row' },
        h('button', { type: 'button', class: 'btn small', onclick: async () => {
          const res = await api('PATCH', `/api/v1/webhooks/${encodeURIComponent(w.id)}`, { enabled: !w.enabled });
          if (!res.ok) toast(`Could not change: ${res.error?.message}`, 'bad');
          integrations();
        } }, w.enabled ? 'Pause' : 'Resume'),
        h('button', { type: 'button', class: 'btn small danger', onclick: async () => {
          if (!confirm(`Delete the webhook to ${w.url}?`)) return;
          const res = await api('DELETE', `/api/v1/webhooks/${encodeURIComponent(w.id)}`);
          if (!res.ok) toast(`Could not delete: ${res.error?.message}`, 'bad');
          integrations();
        } }, 'Delete'))))))
    : h('div', { class: 'empty' }, 'No webhooks yet.');
  return h('section', { class: 'card', id: 'webhooks' }, h('div', { class: 'card-head' }, h('h2', {}, 'Webhooks')), form, table);
}

// ---- audit log -------------------------------------------------------------

async function audit() {
  const r = await api('GET', '/api/v1/audit?limit=200');
  if (!r.ok) { el.body.replaceChildren(head('Audit log'), unavailable('the audit log', r)); return; }
  const list = r.data.records || [];
  el.body.replaceChildren(head('Audit log', 'Who did what, newest first.'),
    h('section', { class: 'card' }, list.length ? h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Who'), h('th', {}, 'Action'), h('th', {}, 'Subject'))),
      h('tbody', {}, list.map((a) => h('tr', {},
        h('td', { title: new Date(a.at).toLocaleString() }, fmtAgo(a.at)),
        h('td', {}, a.actor_name || a.actor_role),
        h('td', {}, h('span', { class: 'mono' }, a.action)),
        h('td', { class: 'small' }, `${a.subject_type} `, h('span', { class: 'mono muted' }, String(a.subject_id).slice(0, 8)))))))
      : h('div', { class: 'empty' }, 'Nothing recorded yet.')));
}
