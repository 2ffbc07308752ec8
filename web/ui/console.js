// console.js: the agent console on /console. The queue and the agent's own
// chats come live over /ws/agent; the open conversation is read with its
// transcript (handoff packet on top) and followed over its own WebSocket.
// Where the server lacks an endpoint the page says so and keeps working.
import { api, upload, toast, unavailable, boot, h, icon, icons } from './staff.js';
import { uuid, fmtTime, fmtDuration, fmtAgo, linkify, attachmentsEl, fmtSize } from './lib.js';

const REASONS = {
  customer_request: 'Asked for a person',
  intent_policy: 'Topic needs a person',
  low_confidence: 'Bot not confident',
  frustration: 'Customer frustrated',
  no_answer: 'Not in the knowledge base',
  unavailable: 'Bot unavailable',
  claimed: 'Claimed',
  auto_assigned: 'Auto-assigned',
  agent_wrote: 'Agent took over',
  released: 'Released to the bot',
  transferred: 'Transferred',
  closed: 'Closed',
  customer_wrote_again: 'Customer wrote again',
  agent_away: 'Agent away',
  agent_offline: 'Agent offline',
};
const reasonLabel = (r) => REASONS[r] || (r ? r.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase()) : '');

const st = {
  me: null, // the signed-in user
  agent: null, // their agent record (status, teams)
  queue: new Map(), // id → queue entry
  mine: new Map(), // id → conversation
  unread: new Set(),
  selected: null,
  transcript: null, // of the selected conversation
  seen: new Set(), // seqs shown in the thread
  lastSeq: 0,
  ws: null, wsAttempt: 0, wsTimer: 0,
  conv: null, convAttempt: 0, convTimer: 0, // the selected conversation's socket
  canned: null, // {ok, list}
  titleFlash: 0,
  pending: new Map(), // client_msg_id → element
  staged: { conv: null, items: [] }, // files for the next reply: {key, file, status, att, error, progress}
};

// Staff see attachments by their paths: the session cookie goes along.
const direct = (url) => Promise.resolve(url);
const attWords = { open: 'Open', download: 'Download', close: 'Close', unavailable: 'unavailable' };

// said is a message as one line: its text, or its attachments' names.
function said(m) {
  if (m?.text) return m.text;
  const names = (m?.attachments || []).map((a) => a.name);
  return names.length ? `📎 ${names.join(', ')}` : '';
}
const el = {};

boot({ title: 'Agent console', role: 'agent', current: '/console', render });

function customerName(c) {
  const cu = c?.customer || {};
  return cu.name || cu.email || cu.external_id || `Visitor ${String(c?.id || '').slice(0, 6)}`;
}

// ---- layout ----------------------------------------------------------------

function render(user, main) {
  st.me = user;
  el.presence = h('select', { id: 'presence', 'aria-label': 'Your status' },
    h('option', { value: 'online' }, 'Online'), h('option', { value: 'away' }, 'Away'), h('option', { value: 'offline' }, 'Offline'));
  el.presenceDot = h('span', { class: 'dot', 'aria-hidden': 'true' });
  el.presence.addEventListener('change', () => setStatus(el.presence.value));
  document.querySelector('.presence-slot')?.replaceWith(h('label', { class: 'presence' }, el.presenceDot, el.presence));

  el.mineCount = h('span', { class: 'count' }, '0');
  el.queueCount = h('span', { class: 'count' }, '0');
  el.mine = h('ul', { class: 'convs', id: 'mine', 'aria-label': 'My chats' });
  el.queue = h('ul', { class: 'convs', id: 'queue', 'aria-label': 'Queue' });
  el.live = h('span', { class: 'badge', id: 'live', title: 'Live updates' }, 'connecting…');
  el.notice = h('div', {});
  el.main = h('section', { class: 'col-main', 'aria-label': 'Conversation' });
  el.side = h('section', { class: 'col-right', 'aria-label': 'Details' });
  el.root = h('div', { class: 'console' },
    h('section', { class: 'col-left', 'aria-label': 'Chats' },
      el.notice,
      h('div', { class: 'col-head' }, h('h2', {}, 'My chats ', el.mineCount), el.live),
      h('div', { class: 'mine-list' }, el.mine),
      h('div', { class: 'col-head' }, h('h2', {}, 'Queue ', el.queueCount),
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Reload the queue', title: 'Reload', onclick: loadQueue }, icon(icons.refresh))),
      h('div', { class: 'queue-list' }, el.queue)),
    el.main, el.side);
  main.append(el.root);
  drawThread();
  loadMe();
  loadQueue();
  connectAgent();
  setInterval(drawQueue, 5000);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') stopFlash(); });
}

// ---- data ------------------------------------------------------------------

async function loadMe() {
  const r = await api('GET', '/api/v1/agents/me');
  if (!r.ok) {
    if (r.status === 404 || r.status >= 500) el.notice.replaceChildren(h('div', { class: 'side-section' }, unavailable('agent presence', r)));
    return;
  }
  setAgent(r.data.agent);
  st.mine = new Map((r.data.conversations || []).map((c) => [c.id, c]));
  drawMine();
}

function setAgent(a) {
  if (!a) return;
  st.agent = a;
  el.presence.value = a.status || 'offline';
  el.presenceDot.className = `dot ${a.status}`;
}

async function setStatus(status) {
  el.presenceDot.className = `dot ${status}`;
  const r = await api('PUT', '/api/v1/agents/me/status', { status });
  if (!r.ok) {
    toast(r.status === 404 ? 'Presence is not available on this server yet.' : `Could not change your status: ${r.error?.message}`, 'bad');
    if (st.agent) setAgent(st.agent);
    return;
  }
  setAgent(r.data.agent);
  toast(`You are ${status}.`, 'ok');
}

async function loadQueue() {
  const r = await api('GET', '/api/v1/queue');
  if (!r.ok) {
    el.queue.replaceChildren(h('li', {}, unavailable('the queue', r)));
    return;
  }
  setQueue(r.data.conversations || []);
}

function setQueue(entries) {
  st.queue = new Map(entries.map((e) => [e.id, { ...e, _at: Date.now() }]));
  drawQueue();
}

// waited is how long an entry has waited by now: the server's figure when
// the entry arrived, plus the time since.
function waited(e) {
  return (e.waiting_seconds || 0) + (Date.now() - (e._at || Date.now())) / 1000;
}

function breached(e) {
  return e.sla_breached || (e.sla_seconds > 0 && waited(e) > e.sla_seconds);
}

function drawQueue() {
  const entries = [...st.queue.values()].sort((a, b) => (b.priority || 0) - (a.priority || 0) || waited(b) - waited(a));
  el.queueCount.textContent = String(entries.length);
  if (!entries.length) {
    el.queue.replaceChildren(h('li', { class: 'empty' }, icon(icons.inbox), 'The queue is empty.'));
    return;
  }
  el.queue.replaceChildren(...entries.map((e) => {
    const sla = breached(e);
    return h('li', { class: sla ? 'sla' : '', dataset: { id: e.id } },
      h('button', { type: 'button', 'aria-current': String(st.selected === e.id), onclick: () => select(e.id) },
        h('span', { class: 'row' }, h('span', { class: 'name' }, customerName(e)),
          h('span', { class: `badge ${sla ? 'bad' : 'warn'}`, title: 'Waiting' }, fmtDuration(waited(e)))),
        e.preview ? h('span', { class: 'preview' }, e.preview) : null,
        h('span', { class: 'tags' },
          e.reason ? h('span', { class: 'badge' }, reasonLabel(e.reason)) : null,
          e.team ? h('span', { class: 'badge accent' }, e.team) : null,
          sla ? h('span', { class: 'badge bad' }, 'SLA breached') : null,
          e.priority > 0 ? h('span', { class: 'badge' }, `P${e.priority}`) : null)));
  }));
}

function drawMine() {
  const convs = [...st.mine.values()];
  el.mineCount.textContent = String(convs.length);
  if (!convs.length) {
    el.mine.replaceChildren(h('li', { class: 'empty' }, 'No open chats. Claim one from the queue.'));
    return;
  }
  el.mine.replaceChildren(...convs.map((c) => h('li', { class: st.unread.has(c.id) ? 'unread' : '', dataset: { id: c.id } },
    h('button', { type: 'button', 'aria-current': String(st.selected === c.id), onclick: () => select(c.id) },
      h('span', { class: 'row' }, h('span', { class: 'name' }, customerName(c)),
        c.assigned_at ? h('span', { class: 'muted small' }, fmtAgo(c.assigned_at)) : null),
      h('span', { class: 'tags' },
        c.reason ? h('span', { class: 'badge' }, reasonLabel(c.reason)) : null,
        c.team ? h('span', { class: 'badge accent' }, c.team) : null)))));
}

// ---- /ws/agent -------------------------------------------------------------

function wsURL(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

function connectAgent() {
  clearTimeout(st.wsTimer);
  const ws = new WebSocket(wsURL('/ws/agent'));
  st.ws = ws;
  ws.onopen = () => { st.wsAttempt = 0; setLive(true); };
  ws.onmessage = (e) => {
    let f;
    try { f = JSON.parse(e.data); } catch { return; }
    onAgentFrame(f);
  };
  ws.onclose = () => {
    if (st.ws !== ws) return;
    st.ws = null;
    setLive(false);
    const delay = Math.min(20000, 1000 * 2 ** st.wsAttempt++) * (0.75 + Math.random() / 2);
    // Meanwhile the lists are polled.
    loadQueue();
    st.wsTimer = setTimeout(connectAgent, delay);
  };
}

function setLive(on) {
  el.live.textContent = on ? 'live' : 'offline';
  el.live.className = `badge ${on ? 'ok' : 'warn'}`;
  el.live.title = on ? 'Live updates are on' : 'Live updates are off; reconnecting';
}

function onAgentFrame(f) {
  const d = f.data || {};
  switch (f.type) {
    case 'hello':
      setAgent(f.agent);
      st.mine = new Map((f.conversations || []).map((c) => [c.id, c]));
      setQueue(f.queue || []);
      drawMine();
      break;
    case 'queue':
      if (d.change === 'removed') st.queue.delete(f.conversation_id || d.entry?.id);
      else if (d.entry) st.queue.set(d.entry.id, { ...d.entry, _at: Date.now() });
      drawQueue();
      if (d.change === 'added') blip(`New in the queue: ${customerName(d.entry)}`);
      break;
    case 'sla':
      if (d.entry) { st.queue.set(d.entry.id, { ...d.entry, sla_breached: true, _at: Date.now() }); drawQueue(); }
      break;
    case 'assigned': {
      const c = d.conversation;
      if (c && (!d.agent_id || d.agent_id === st.me.id)) {
        st.mine.set(c.id, c);
        st.queue.delete(c.id);
        drawMine();
        drawQueue();
        if (d.reason !== 'claimed') {
          announce(`New chat assigned: ${customerName(c)}`);
          if (!st.selected) select(c.id);
        }
        if (st.selected === c.id) refreshSelected();
      }
      break;
    }
    case 'unassigned':
      st.mine.delete(f.conversation_id);
      drawMine();
      if (st.selected === f.conversation_id) refreshSelected();
      break;
    case 'agent.status':
      if (d.id === st.me.id) setAgent(d);
      break;
    case 'note':
      if (f.conversation_id === st.selected && st.transcript) {
        const notes = st.transcript.notes || (st.transcript.notes = []);
        if (!notes.some((n) => n.id === d.id)) { notes.push(d); drawSide(); }
      }
      break;
    case 'message':
      // Events of held conversations: mark the others unread; the open one
      // has its own socket.
      if (f.conversation_id !== st.selected && f.message?.role === 'customer' && st.mine.has(f.conversation_id)) {
        st.unread.add(f.conversation_id);
        drawMine();
        blip(`${customerName(st.mine.get(f.conversation_id))}: ${said(f.message)}`);
      }
      break;
    default:
      break;
  }
}

// announce tells the agent about a new assignment: a toast, the tab title
// and a short chime.
function announce(text) {
  toast(text, 'ok');
  blip(text);
}

function blip(text) {
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  if (!st.titleFlash) {
    const base = document.title;
    let on = false;
    st.titleBase = base;
    st.titleFlash = setInterval(() => { on = !on; document.title = on ? `● ${text.slice(0, 40)}` : base; }, 1200);
  }
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const o = ctx.createOscillator();
    const g = ctx.createGain();
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.0001, ctx.currentTime);
    g.gain.exponentialRampToValueAtTime(0.15, ctx.currentTime + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.35);
    o.connect(g).connect(ctx.destination);
    o.start();
    o.stop(ctx.currentTime + 0.4);
    o.onended = () => ctx.close();
  } catch { /* no audio: the title still changes */ }
}

function stopFlash() {
  if (!st.titleFlash) return;
  clearInterval(st.titleFlash);
  st.titleFlash = 0;
  document.title = st.titleBase || document.title;
}
window.addEventListener('focus', stopFlash);

// ---- the open conversation -------------------------------------------------

async function select(id) {
  st.selected = id;
  st.unread.delete(id);
  st.transcript = null;
  st.seen = new Set();
  st.lastSeq = 0;
  el.root.classList.add('open', 'detail');
  drawMine();
  drawQueue();
  drawThread();
  await refreshSelected();
  followConversation();
}

async function refreshSelected() {
  const id = st.selected;
  if (!id) return;
  const r = await api('GET', `/api/v1/conversations/${encodeURIComponent(id)}/transcript`);
  if (st.selected !== id) return;
  if (!r.ok) {
    // Without the transcript endpoint, the messages alone still work.
    const m = await api('GET', `/api/v1/conversations/${encodeURIComponent(id)}/messages`);
    const c = await api('GET', `/api/v1/conversations/${encodeURIComponent(id)}`);
    st.transcript = { conversation: c.data || st.mine.get(id) || st.queue.get(id) || { id }, messages: m.data?.messages || [],
      events: [], notes: [], missing: r };
  } else {
    st.transcript = r.data;
  }
  st.seen = new Set();
  st.lastSeq = 0;
  drawThread();
  drawSide();
}

function followConversation() {
  clearTimeout(st.convTimer);
  if (st.conv) { st.conv.onclose = null; st.conv.close(); st.conv = null; }
  const id = st.selected;
  if (!id) return;
  const ws = new WebSocket(wsURL(`/ws/conversations/${encodeURIComponent(id)}?after=${st.lastSeq}`));
  st.conv = ws;
  ws.onopen = () => { st.convAttempt = 0; };
  ws.onmessage = (e) => {
    if (st.conv !== ws) return;
    let f;
    try { f = JSON.parse(e.data); } catch { return; }
    onConversationFrame(f);
  };
  ws.onclose = () => {
    if (st.conv !== ws) return;
    st.conv = null;
    const delay = Math.min(15000, 500 * 2 ** st.convAttempt++);
    st.convTimer = setTimeout(followConversation, delay);
  };
}

function onConversationFrame(f) {
  switch (f.type) {
    case 'message':
      if (f.message) addLine(f.message);
      break;
    case 'state':
      addEvent({ seq: f.seq, type: 'state', state: f.state, data: f.data, created_at: f.created_at });
      // The state changes who may do what: reload the header and actions.
      refreshHeader(f.state);
      break;
    case 'csat':
    case 'csat.request':
      addEvent({ seq: f.seq, type: f.type, data: f.data, created_at: f.created_at });
      break;
    case 'typing':
      if (f.role === 'customer') showTyping();
      break;
    default:
      break;
  }
}

async function refreshHeader(state) {
  if (st.transcript?.conversation) st.transcript.conversation.state = state;
  const r = await api('GET', `/api/v1/conversations/${encodeURIComponent(st.selected)}`);
  if (r.ok && st.transcript && r.data.id === st.selected) st.transcript.conversation = r.data;
  drawHead();
}

let typingTimer = 0;
function showTyping() {
  if (!el.typing) return;
  el.typing.textContent = `${customerName(st.transcript?.conversation)} is typing…`;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { el.typing.textContent = ''; }, 5000);
}

function drawThread() {
  if (!st.selected) {
    el.main.replaceChildren(h('div', { class: 'placeholder' }, h('div', {}, icon(icons.chat),
      h('p', {}, 'Pick a chat from the queue or your chats.'),
      h('p', { class: 'small' }, 'New assignments open here by themselves.'))));
    el.side.replaceChildren();
    return;
  }
  // Keep a draft across redraws of the same conversation.
  const draft = el.reply && el.draftFor === st.selected ? el.reply.value : '';
  el.head = h('div', { class: 'thread-head' });
  el.thread = h('div', { class: 'thread', id: 'thread', role: 'log', 'aria-live': 'polite', 'aria-label': 'Transcript' });
  el.typing = h('div', { class: 'typing-line', 'aria-live': 'polite' });
  el.composer = composer();
  el.main.replaceChildren(el.head, el.thread, el.typing, el.composer);
  el.reply.value = draft;
  el.draftFor = st.selected;
  const t = st.transcript;
  if (!t) {
    el.thread.append(h('p', { class: 'empty' }, 'Loading…'));
    drawHead();
    return;
  }
  if (t.missing) el.thread.append(unavailable('the transcript with the handoff packet', t.missing));
  if (t.handoff) el.thread.append(packet(t.handoff));
  const items = [
    ...(t.messages || []).map((m) => ({ seq: m.seq, m })),
    ...(t.events || []).filter((e) => e.type !== 'message').map((e) => ({ seq: e.seq, e })),
  ].sort((a, b) => a.seq - b.seq);
  for (const it of items) {
    if (it.m) addLine(it.m, true);
    else addEvent(it.e, true);
  }
  drawHead();
  scrollThread();
}

function scrollThread() {
  requestAnimationFrame(() => { el.thread.scrollTop = el.thread.scrollHeight; });
}

function packet(p) {
  const pct = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : '—');
  return h('article', { class: 'packet', id: 'packet', 'aria-label': 'Handoff packet' },
    h('h3', {}, icon(icons.bot), 'Handoff from the bot'),
    p.summary ? h('p', { class: 'summary' }, p.summary) : null,
    h('dl', {},
      h('div', {}, h('dt', {}, 'Reason'), h('dd', {}, reasonLabel(p.reason))),
      h('div', {}, h('dt', {}, 'Intent'), h('dd', {}, p.intent || '—')),
      h('div', {}, h('dt', {}, 'Confidence'), h('dd', {}, pct(p.confidence))),
      h('div', {}, h('dt', {}, 'Team'), h('dd', {}, p.team || p.requested_team || 'any')),
      p.escalated_at ? h('div', {}, h('dt', {}, 'Escalated'), h('dd', {}, fmtAgo(p.escalated_at))) : null),
    p.last_answer ? h('div', {}, h('p', { class: 'label' }, 'The bot’s last answer'), h('div', { class: 'last' }, p.last_answer)) : null,
    p.sources?.length ? h('p', { class: 'small muted' }, 'Sources: ', p.sources.map((s) => s.title).filter(Boolean).join(' · ')) : null);
}

function addLine(m, initial) {
  if (!m.seq || st.seen.has(m.seq)) return;
  st.seen.add(m.seq);
  st.lastSeq = Math.max(st.lastSeq, m.seq);
  if (m.client_msg_id && st.pending.has(m.client_msg_id)) {
    st.pending.get(m.client_msg_id).remove();
    st.pending.delete(m.client_msg_id);
  }
  let node;
  if (m.role === 'system') {
    node = h('div', { class: 'event' }, m.text);
  } else {
    const who = m.role === 'customer' ? customerName(st.transcript?.conversation) : m.role === 'bot' ? 'Bot' : (m.author_name || 'Agent');
    const srcs = (m.meta?.sources || []).map((s) => s.title).filter(Boolean);
    node = h('div', { class: `line ${m.role}` },
      h('div', { class: 'who' }, `${who} · ${fmtTime(m.created_at)}`),
      linkify(h('div', { class: m.text ? 'bubble' : 'bubble empty' }), m.text),
      attachmentsEl(m.attachments, direct, attWords),
      srcs.length ? h('div', { class: 'src' }, `Sources: ${[...new Set(srcs)].join(' · ')}`) : null);
  }
  node.dataset.seq = String(m.seq);
  insertBySeq(node, m.seq);
  if (!initial) {
    scrollThread();
    if (m.role === 'customer') { el.typing.textContent = ''; blip(`${customerName(st.transcript?.conversation)}: ${said(m)}`); }
  }
}

function eventText(e) {
  const d = (e.data && typeof e.data === 'object') ? e.data : {};
  const by = e.actor_name ? ` by ${e.actor_name}` : '';
  switch (e.type) {
    case 'state':
      switch (e.state) {
        case 'queued': return `Queued${d.team ? ` for ${d.team}` : ''}${d.reason ? ` · ${reasonLabel(d.reason)}` : ''}`;
        case 'assigned': return `Assigned to ${d.agent?.name || 'an agent'}${d.reason ? ` · ${reasonLabel(d.reason)}` : ''}`;
        case 'bot': return d.from && d.from !== 'bot' ? `Back with the bot${by}` : 'Conversation started';
        case 'closed': return `Closed${by}${d.resolution ? ` · ${d.resolution}` : ''}`;
        default: return `State: ${e.state}`;
      }
    case 'csat.request': return 'Rating requested';
    case 'csat': return `Customer rated ${'★'.repeat(d.score || 0)}${'☆'.repeat(Math.max(0, 5 - (d.score || 0)))}${d.comment ? ` · “${d.comment}”` : ''}`;
    default: return e.type;
  }
}

function addEvent(e, initial) {
  if (!e.seq || st.seen.has(e.seq)) return;
  st.seen.add(e.seq);
  st.lastSeq = Math.max(st.lastSeq, e.seq);
  const text = eventText(e);
  if (!text) return;
  const node = h('div', { class: 'event', dataset: { seq: String(e.seq) } }, text);
  insertBySeq(node, e.seq);
  if (!initial) scrollThread();
}

function insertBySeq(node, seq) {
  for (const c of el.thread.children) {
    if (c.dataset.pending !== undefined || (c.dataset.seq && Number(c.dataset.seq) > seq)) {
      el.thread.insertBefore(node, c);
      return;
    }
  }
  el.thread.append(node);
}

function drawHead() {
  const t = st.transcript;
  const c = t?.conversation || st.mine.get(st.selected) || st.queue.get(st.selected) || { id: st.selected };
  const state = c.state || (st.queue.has(c.id) ? 'queued' : '');
  const mine = state === 'assigned' && c.assigned_to === st.me.id;
  const stateBadge = { bot: ['', 'With the bot'], queued: ['warn', 'Waiting in queue'], assigned: [mine ? 'ok' : 'accent', mine ? 'Yours' : `With ${c.assignee_name || 'another agent'}`], closed: ['', 'Closed'] }[state] || ['', state];
  const act = (label, cls, fn, ic) => h('button', { type: 'button', class: `btn small ${cls}`, onclick: fn }, ic ? icon(ic) : null, label);
  const actions = [];
  if (state === 'queued') actions.push(act('Claim', 'primary', () => action('claim'), icons.check));
  if (state === 'assigned' && !mine && st.me.roles?.includes('admin')) actions.push(act('Take over', '', () => action('claim')));
  if (state === 'assigned' || state === 'queued') actions.push(act('Transfer', '', transferDialog));
  if (state === 'assigned' || state === 'queued') actions.push(act('Release to bot', '', () => action('release')));
  if (state !== 'closed' && state) actions.push(act('Close', 'danger', () => action('close')));
  el.head.replaceChildren(
    h('button', { type: 'button', class: 'btn small back', onclick: () => el.root.classList.remove('open') }, '← Back'),
    h('div', {}, h('h2', { id: 'thread-title' }, customerName(c)),
      h('div', { class: 'btn-row small' }, h('span', { class: `badge ${stateBadge[0]}`, id: 'thread-state' }, stateBadge[1]),
        c.team ? h('span', { class: 'badge accent' }, c.team) : null,
        c.reason ? h('span', { class: 'muted' }, reasonLabel(c.reason)) : null)),
    h('div', { class: 'spacer' }),
    h('div', { class: 'btn-row' }, actions));
  const canWrite = state !== 'closed';
  if (el.reply) {
    el.reply.disabled = !canWrite;
    el.reply.placeholder = canWrite ? (mine ? 'Write a reply… (Enter sends, Shift+Enter for a new line)' : 'Writing here takes the conversation over.') : 'The conversation is closed.';
  }
}

async function action(kind) {
  const id = st.selected;
  let body;
  if (kind === 'close') {
    if (!confirm('Close this conversation? The customer is asked to rate it.')) return;
    body = { resolution: 'resolved' };
  }
  if (kind === 'release' && !confirm('Hand this conversation back to the bot?')) return;
  const r = await api('POST', `/api/v1/conversations/${encodeURIComponent(id)}/${kind}`, body || {});
  if (!r.ok) {
    toast(r.status === 404 && r.error?.code !== 'not_found' ? `This server cannot ${kind} conversations yet.` : `Could not ${kind}: ${r.error?.message}`, 'bad');
    return;
  }
  const c = r.data?.conversation;
  if (c) {
    if (c.state === 'assigned' && c.assigned_to === st.me.id) st.mine.set(c.id, c);
    else st.mine.delete(c.id);
    if (c.state !== 'queued') st.queue.delete(c.id);
    drawMine();
    drawQueue();
  }
  toast({ claim: 'The conversation is yours.', release: 'Handed back to the bot.', close: 'Closed. The customer was asked to rate it.' }[kind] || 'Done.', 'ok');
  await refreshSelected();
}

async function transferDialog() {
  const [teams, agents] = await Promise.all([api('GET', '/api/v1/teams'), api('GET', '/api/v1/agents')]);
  const target = h('select', { class: 'input', id: 'transfer-target', required: true });
  const online = (agents.data?.agents || []).filter((a) => a.status === 'online' && a.id !== st.me.id);
  if (teams.ok && teams.data.teams?.length) {
    target.append(h('optgroup', { label: 'Teams' }, teams.data.teams.map((t) => h('option', { value: `team:${t.name}` }, t.name))));
  }
  if (online.length) target.append(h('optgroup', { label: 'Agents online' }, online.map((a) => h('option', { value: `agent:${a.id}` }, a.name || a.email))));
  const note = h('textarea', { class: 'input', id: 'transfer-note', rows: 3, placeholder: 'A private note for whoever takes it (optional)' });
  const dlg = h('dialog', { class: 'card', 'aria-labelledby': 'transfer-title' });
  const form = h('form', { method: 'dialog', class: 'card-body' },
    h('h2', { id: 'transfer-title' }, 'Transfer'),
    !target.options.length ? h('p', { class: 'muted small' }, 'There is no team or other online agent to transfer to.') : null,
    h('div', { class: 'field' }, h('label', { for: 'transfer-target' }, 'To'), target),
    h('div', { class: 'field' }, h('label', { for: 'transfer-note' }, 'Note'), note),
    h('div', { class: 'btn-row' }, h('button', { value: 'ok', class: 'btn primary', disabled: !target.options.length }, 'Transfer'), h('button', { value: 'cancel', class: 'btn', formnovalidate: true }, 'Cancel')));
  dlg.append(form);
  document.body.append(dlg);
  dlg.addEventListener('close', async () => {
    dlg.remove();
    if (dlg.returnValue !== 'ok') return;
    const [kind, value] = target.value.split(/:(.*)/s);
    const body = kind === 'team' ? { team: value, note: note.value } : { agent_id: value, note: note.value };
    const r = await api('POST', `/api/v1/conversations/${encodeURIComponent(st.selected)}/transfer`, body);
    if (!r.ok) { toast(`Could not transfer: ${r.error?.message}`, 'bad'); return; }
    st.mine.delete(st.selected);
    drawMine();
    toast('Transferred.', 'ok');
    refreshSelected();
  });
  dlg.showModal();
}

// ---- composer ----------------------------------------------------------------

function composer() {
  el.reply = h('textarea', { class: 'input', id: 'reply', rows: 3, 'aria-label': 'Reply to the customer' });
  const send = h('button', { type: 'submit', class: 'btn primary', id: 'reply-send' }, icon(icons.send), 'Send');
  el.canned = h('select', { class: 'input', id: 'canned', 'aria-label': 'Insert a canned reply' }, h('option', { value: '' }, 'Canned replies…'));
  el.canned.style.width = 'auto';
  el.canned.addEventListener('change', () => {
    const r = st.canned?.list?.find((x) => x.id === el.canned.value);
    if (r) insertText(r.text);
    el.canned.value = '';
  });
  loadCanned();
  el.suggest = h('div', {});
  const suggestBtn = h('button', { type: 'button', class: 'btn', id: 'suggest-btn', title: 'Ask the bot to draft a reply to the customer’s last message' },
    icon(icons.bot), 'Suggest a reply');
  suggestBtn.addEventListener('click', async () => {
    suggestBtn.disabled = true;
    const r = await api('POST', `/api/v1/conversations/${encodeURIComponent(st.selected)}/suggest`);
    suggestBtn.disabled = false;
    if (!r.ok) {
      toast(r.status === 404 && r.error?.code !== 'not_found' ? 'Suggestions are not available on this server yet.' : `No suggestion: ${r.error?.message}`, 'bad');
      return;
    }
    const sg = r.data.suggestion || {};
    if (!sg.text) { toast('The bot has no answer to suggest for this message.'); return; }
    showSuggestion(sg.text, (sg.sources || []).map((x) => x.title).filter(Boolean));
  });
  const fileInput = h('input', { type: 'file', id: 'reply-file', multiple: true, hidden: true });
  fileInput.addEventListener('change', () => { stageFiles([...fileInput.files]); fileInput.value = ''; });
  const attachBtn = h('button', { type: 'button', class: 'btn', id: 'reply-attach', title: 'Attach a file (a label, a guide, an invoice) to the reply' },
    icon(icons.clip), 'Attach');
  attachBtn.addEventListener('click', () => fileInput.click());
  el.staged = h('ul', { class: 'staged', id: 'reply-staged', 'aria-live': 'polite' });
  const form = h('form', { class: 'composer2' }, el.suggest, el.staged, el.reply,
    h('div', { class: 'tools' }, el.canned, suggestBtn, attachBtn, fileInput, h('span', { class: 'spacer' }), send));
  form.addEventListener('submit', (e) => { e.preventDefault(); sendReply(); });
  el.reply.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) { e.preventDefault(); stageFiles(files); }
  });
  form.addEventListener('dragover', (e) => { if ([...(e.dataTransfer?.types || [])].includes('Files')) e.preventDefault(); });
  form.addEventListener('drop', (e) => {
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) { e.preventDefault(); stageFiles(files); }
  });
  if (st.staged.conv !== st.selected) st.staged = { conv: st.selected, items: [] };
  drawStaged();
  el.reply.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  let lastTyping = 0;
  el.reply.addEventListener('input', () => {
    if (Date.now() - lastTyping > 3000 && st.conv?.readyState === WebSocket.OPEN) {
      lastTyping = Date.now();
      st.conv.send('{"type":"typing"}');
    }
  });
  return form;
}

function showSuggestion(text, sources) {
  el.suggest.replaceChildren(h('div', { class: 'suggest', id: 'suggestion' }, icon(icons.bot),
    h('p', { title: sources.length ? `Sources: ${sources.join(' · ')}` : null }, text),
    h('button', { type: 'button', class: 'btn small', onclick: () => insertText(text) }, 'Use'),
    h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Dismiss the suggestion', onclick: () => el.suggest.replaceChildren() }, icon(icons.close))));
}

function insertText(text) {
  const t = el.reply;
  const start = t.selectionStart ?? t.value.length;
  t.value = t.value.slice(0, start) + text + t.value.slice(t.selectionEnd ?? start);
  t.focus();
  t.selectionStart = t.selectionEnd = start + text.length;
}

async function loadCanned() {
  if (!st.canned) {
    const r = await api('GET', '/api/v1/canned-replies');
    st.canned = { ok: r.ok, list: r.ok ? (r.data.canned_replies || []) : [] };
  }
  const team = st.transcript?.conversation?.team;
  const list = st.canned.list.filter((x) => !x.team || !team || x.team === team);
  el.canned.replaceChildren(h('option', { value: '' }, list.length ? 'Canned replies…' : st.canned.ok ? 'No canned replies' : 'Canned replies unavailable'),
    ...list.map((x) => h('option', { value: x.id }, x.title)));
  el.canned.disabled = !list.length;
}

// stageFiles uploads files for the next reply at once; the server checks
// their type and size and says why when it refuses one.
function stageFiles(files) {
  const id = st.selected;
  if (!id) return;
  for (const file of files) {
    if (st.staged.items.length >= 10) { toast('A message carries at most 10 files.', 'bad'); break; }
    const item = { key: uuid(), file, status: 'uploading', progress: 0 };
    st.staged.items.push(item);
    const form = new FormData();
    form.append('file', file, file.name || 'pasted-image.png');
    upload('POST', `/api/v1/conversations/${encodeURIComponent(id)}/attachments`, form, (p) => { item.progress = p; drawStaged(); })
      .then((r) => {
        if (r.ok) { item.status = 'ready'; item.att = r.data; } else { item.status = 'failed'; item.error = r.error?.message; }
        drawStaged();
      });
  }
  drawStaged();
}

function drawStaged() {
  if (!el.staged) return;
  const items = st.staged.items;
  el.staged.hidden = !items.length;
  el.staged.replaceChildren(...items.map((x) => {
    const status = { uploading: `Uploading… ${Math.round((x.progress || 0) * 100)}%`, ready: fmtSize(x.file.size), failed: `Not attached: ${x.error || ''}` }[x.status];
    const remove = h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Remove ${x.file.name}`, title: 'Remove' }, icon(icons.close));
    remove.addEventListener('click', () => { st.staged.items = st.staged.items.filter((y) => y !== x); drawStaged(); });
    return h('li', { class: `staged-item ${x.status}`, dataset: { status: x.status } },
      icon(x.file.type.startsWith('image/') ? icons.image : icons.file),
      h('span', { class: 'staged-text' }, h('span', { class: 'staged-name' }, x.file.name || 'image'), h('span', { class: 'staged-status' }, status)),
      remove);
  }));
}

async function sendReply() {
  const text = el.reply.value.trim();
  const id = st.selected;
  if (st.staged.items.some((x) => x.status === 'uploading')) { toast('Wait until the files are uploaded.'); return; }
  const atts = st.staged.items.filter((x) => x.status === 'ready').map((x) => x.att);
  if ((!text && !atts.length) || !id) return;
  const cid = uuid();
  const node = h('div', { class: 'line agent pending', dataset: { pending: '' } },
    h('div', { class: 'who' }, 'You · sending…'), linkify(h('div', { class: text ? 'bubble' : 'bubble empty' }), text),
    attachmentsEl(atts, direct, attWords));
  st.pending.set(cid, node);
  el.thread.append(node);
  scrollThread();
  el.reply.value = '';
  const sent = st.staged.items.filter((x) => x.status === 'ready');
  st.staged.items = st.staged.items.filter((x) => x.status !== 'ready');
  drawStaged();
  const r = await api('POST', `/api/v1/conversations/${encodeURIComponent(id)}/messages`,
    { text, client_msg_id: cid, attachments: atts.map((a) => a.id) });
  if (!r.ok) {
    node.remove();
    st.pending.delete(cid);
    el.reply.value = text;
    if (st.selected === id) { st.staged.items.unshift(...sent); drawStaged(); }
    toast(`Not sent: ${r.error?.message}`, 'bad');
    return;
  }
  if (r.data?.message) addLine(r.data.message);
  // Writing takes the conversation over; the header follows.
  if (st.transcript?.conversation?.state !== 'assigned') refreshHeader('assigned');
}

// ---- right column ------------------------------------------------------------

function drawSide() {
  const t = st.transcript;
  if (!t) { el.side.replaceChildren(); return; }
  const c = t.conversation || {};
  const cu = t.customer || c.customer || {};
  const row = (k, v) => (v ? [h('dt', {}, k), h('dd', {}, v)] : []);
  const attrs = Object.entries(cu.attributes || {}).flatMap(([k, v]) => row(k, typeof v === 'object' ? JSON.stringify(v) : String(v)));
  // The bot's would-be answer, offered as a suggested reply until the
  // agent asks for a fresh one.
  const suggestion = t.handoff?.last_answer;
  if (suggestion && c.state !== 'closed') showSuggestion(suggestion, (t.handoff.sources || []).map((x) => x.title).filter(Boolean));
  else el.suggest.replaceChildren();
  loadCanned();
  const noteText = h('textarea', { class: 'input', id: 'note-text', rows: 2, placeholder: 'Only agents see notes', 'aria-label': 'New private note' });
  const noteForm = h('form', {}, noteText, h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn small' }, 'Add note')));
  noteForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = noteText.value.trim();
    if (!text) return;
    const r = await api('POST', `/api/v1/conversations/${encodeURIComponent(c.id || st.selected)}/notes`, { text });
    if (!r.ok) { toast(r.status === 404 && r.error?.code !== 'not_found' ? 'Notes are not available on this server yet.' : `Could not add the note: ${r.error?.message}`, 'bad'); return; }
    noteText.value = '';
    const notes = t.notes || (t.notes = []);
    if (!notes.some((n) => n.id === r.data.note.id)) notes.push(r.data.note);
    drawSide();
  });
  const csat = (t.csat || []).at(-1);
  el.side.replaceChildren(
    h('div', { class: 'side-section' }, h('h3', {}, 'Customer'),
      h('dl', {}, row('Name', cu.name), row('Email', cu.email), row('External id', cu.external_id),
        row('Identity', c.verified ? 'verified' : 'not verified'), row('Language', cu.locale), attrs)),
    h('div', { class: 'side-section' }, h('h3', {}, 'Conversation'),
      h('dl', {}, row('Started', c.created_at && fmtAgo(c.created_at)), row('Team', c.team), row('Priority', c.priority ? `P${c.priority}` : ''),
        row('Resolution', c.resolution), row('Rating', csat ? `${csat.score}/5${csat.comment ? ` · ${csat.comment}` : ''}` : ''),
        row('Id', h('span', { class: 'mono' }, String(c.id || ''))))),
    h('div', { class: 'side-section' }, h('h3', {}, 'Private notes'),
      h('div', { class: 'notes', id: 'notes' }, (t.notes || []).map((n) => h('div', { class: 'note-line' },
        h('div', { class: 'muted small' }, `${n.author_name || 'Agent'} · ${fmtAgo(n.created_at)}`), n.text))),
      noteForm));
}
