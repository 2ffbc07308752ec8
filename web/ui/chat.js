// chat.js: the customer chat, standalone on /chat and inside the widget's
// iframe (/chat?embed=1). It speaks the public contract only: create a
// conversation, then one WebSocket that replays everything after the last
// seq it saw and streams live events; messages are de-duplicated by seq and
// resent with the same client_msg_id after a reconnect.
import { h, icon, icons, uuid, pickLang, fmtTime, linkify, attachmentsEl, fmtSize } from './lib.js';

const STRINGS = {
  en: {
    title: 'Support',
    status_bot: 'Virtual assistant · replies instantly',
    status_queued: 'Waiting for a person…',
    status_assigned: 'Chatting with {name}',
    status_closed: 'Conversation closed · write to reopen',
    status_offline: 'Offline · reconnecting…',
    new_conversation: 'Start a new conversation',
    close: 'Close chat',
    human: 'Talk to a person',
    human_request: 'I would like to talk to a person, please.',
    input_label: 'Your message',
    placeholder: 'Type your message…',
    send: 'Send',
    powered: 'Powered by',
    greeting: "Hi! I'm the virtual assistant. Ask me anything and I'll answer from our help center — or tap “Talk to a person” at any time.",
    you: 'You',
    assistant: 'Assistant',
    agent: 'Support agent',
    sources: (n) => (n === 1 ? '1 source' : `${n} sources`),
    sending: 'Sending…',
    failed: 'Not sent',
    retry: 'Retry',
    typing: '{name} is typing…',
    connecting: 'Connecting…',
    reconnecting: 'Connection lost. Reconnecting…',
    reconnected: 'Back online.',
    unreachable: 'We could not reach support. Retrying…',
    gone: 'Your previous conversation is no longer available, so a new one will start.',
    queue_pos: '#{n} in line',
    state_closed: 'This conversation was closed. Write again any time to reopen it.',
    csat_title: 'How did we do?',
    csat_legend: 'Rate this conversation from 1 to 5 stars',
    csat_star: (n) => (n === 1 ? '1 star' : `${n} stars`),
    csat_comment: 'Anything you would like to add? (optional)',
    csat_send: 'Send rating',
    csat_thanks: 'Thank you for your feedback!',
    confirm_new: 'Start a new conversation? This one stays with our team.',
    history: 'Earlier conversations',
    history_back: 'Back to the chat',
    history_list: 'All earlier conversations',
    history_loading: 'Loading…',
    history_empty: 'You have no earlier conversations yet.',
    history_unavailable: 'Your earlier conversations cannot be shown right now.',
    history_current: 'This conversation',
    history_messages: (n) => (n === 1 ? '1 message' : `${n} messages`),
    attach: 'Attach a photo or file',
    attach_uploading: 'Uploading…',
    attach_failed: 'Not attached',
    attach_remove: 'Remove',
    attach_open: 'Open',
    attach_download: 'Download',
    attach_close: 'Close',
    attach_unavailable: 'unavailable',
    attach_drop: 'Drop photos or files to attach them',
    attach_wait: 'Wait until the files are uploaded.',
    attach_too_many: 'A message carries at most 10 files.',
  },
  zh: {
    title: '在线客服',
    status_bot: '智能助手 · 即时回复',
    status_queued: '正在等待人工客服…',
    status_assigned: '{name} 正在为您服务',
    status_closed: '会话已结束 · 发送消息即可重新开始',
    status_offline: '已断开 · 正在重新连接…',
    new_conversation: '开始新的会话',
    close: '关闭对话',
    human: '转人工客服',
    human_request: '请帮我转人工客服。',
    input_label: '您的消息',
    placeholder: '请输入消息…',
    send: '发送',
    powered: '技术支持',
    greeting: '您好！我是智能助手，可以根据帮助中心的内容为您解答问题。如需人工服务，请随时点击“转人工客服”。',
    you: '我',
    assistant: '智能助手',
    agent: '客服',
    sources: (n) => `${n} 个来源`,
    sending: '发送中…',
    failed: '发送失败',
    retry: '重试',
    typing: '{name} 正在输入…',
    connecting: '正在连接…',
    reconnecting: '连接已断开，正在重新连接…',
    reconnected: '已恢复连接。',
    unreachable: '暂时无法连接客服，正在重试…',
    gone: '之前的会话已不可用，将为您开始新的会话。',
    queue_pos: '排队第 {n} 位',
    state_closed: '本次会话已结束，您可以随时发送消息重新开始。',
    csat_title: '请为本次服务评分',
    csat_legend: '请为本次会话打 1 到 5 星',
    csat_star: (n) => `${n} 星`,
    csat_comment: '还有什么想告诉我们的吗？（选填）',
    csat_send: '提交评价',
    csat_thanks: '感谢您的评价！',
    confirm_new: '要开始新的会话吗？当前会话会保留给客服团队。',
    history: '历史会话',
    history_back: '返回当前对话',
    history_list: '全部历史会话',
    history_loading: '加载中…',
    history_empty: '您还没有历史会话。',
    history_unavailable: '暂时无法显示您的历史会话。',
    history_current: '当前会话',
    history_messages: (n) => `${n} 条消息`,
    attach: '发送照片或文件',
    attach_uploading: '上传中…',
    attach_failed: '未能添加',
    attach_remove: '移除',
    attach_open: '查看',
    attach_download: '下载',
    attach_close: '关闭',
    attach_unavailable: '无法显示',
    attach_drop: '将照片或文件拖到这里',
    attach_wait: '请等待文件上传完成。',
    attach_too_many: '每条消息最多 10 个文件。',
  },
};

const params = new URLSearchParams(location.search);
const embedded = params.get('embed') === '1';
const lang = pickLang(params.get('lang'));
const T = STRINGS[lang];
const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ''));

// The widget passes who the customer is in the fragment, which never
// reaches a server log.
let identity = {};
try {
  if (location.hash.length > 1) identity = JSON.parse(decodeURIComponent(location.hash.slice(1))) || {};
} catch { identity = {}; }

// who names the customer the widget says this is: a stored conversation of
// someone else (another account signed in on the same browser) is never
// reopened, so nobody sees another person's chat.
const who = typeof identity.external_id === 'string' ? identity.external_id : '';
// verifiable: the site vouches for the customer (user_hash), so their
// earlier conversations can be listed.
let verifiable = !!(who && typeof identity.user_hash === 'string' && identity.user_hash);

const STORE = 'tandem.chat.v1';
const $ = (id) => document.getElementById(id);
const list = $('messages');
const input = $('input');
const conn = $('conn');

const st = {
  conv: null, // {id, token}
  outbox: [], // messages not yet seen stored: [{id, text}]
  seen: new Set(), // seqs already shown
  streamSeq: 0, // last seq received on the socket: where a reconnect resumes
  ws: null,
  gen: 0, // socket generation, so each socket sends each outbox item once
  attempt: 0,
  timer: 0,
  creating: null,
  state: 'bot',
  agentName: '',
  queue: null, // the queue info of the last move to the queue
  streaming: null, // the bot reply being streamed (bot.delta)
  typingTimer: 0,
  lastTypingSent: 0,
  visible: !embedded,
  unread: 0,
  everOpen: false,
  pendingCsat: null,
  staged: [], // files picked for the next message: {key, file, preview, status, att, error}
};

// Attachments are fetched with the conversation token (never put in a URL)
// and shown from blob: URLs, each fetched once.
const blobs = new Map();
function authedURL(url) {
  if (!blobs.has(url)) {
    const conv = st.conv;
    const p = (conv ? fetch(url, { headers: { Authorization: `Bearer ${conv.token}` } }) : Promise.reject(new Error('no conversation')))
      .then((r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); return r.blob(); })
      .then((b) => URL.createObjectURL(b));
    p.catch(() => blobs.delete(url));
    blobs.set(url, p);
  }
  return blobs.get(url);
}
const attWords = () => ({ open: T.attach_open, download: T.attach_download, close: T.attach_close, unavailable: T.attach_unavailable });

// ---- storage -------------------------------------------------------------

function load() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE) || 'null');
    if (v && typeof v.id === 'string' && typeof v.token === 'string' && (v.who || '') === who) return v;
  } catch { /* storage unavailable or corrupt */ }
  return null;
}

function save() {
  try {
    if (!st.conv) localStorage.removeItem(STORE);
    else localStorage.setItem(STORE, JSON.stringify({ id: st.conv.id, token: st.conv.token, who,
      outbox: st.outbox.map(({ id, text, attachments, atts }) => ({ id, text, attachments, atts })) }));
  } catch { /* private mode: the chat still works for this page view */ }
}

// csatKey marks a rating request as answered (a conversation may be closed,
// reopened and closed again).
const csatKey = (seq) => `tandem.csat.${st.conv?.id}.${seq || 0}`;

// ---- rendering -------------------------------------------------------------

function applyStrings() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = T[el.dataset.i18n]; });
  document.querySelectorAll('[data-i18n-label]').forEach((el) => {
    el.setAttribute('aria-label', T[el.dataset.i18nLabel]);
    el.title = T[el.dataset.i18nLabel];
  });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = T[el.dataset.i18nPlaceholder]; });
  const title = params.get('title');
  if (title) $('chat-title').textContent = title.slice(0, 60);
  document.title = $('chat-title').textContent;
  const color = params.get('color');
  if (color && /^#[0-9a-f]{3,8}$/i.test(color)) {
    document.documentElement.style.setProperty('--accent', color);
    document.documentElement.style.setProperty('--accent-strong', color);
  }
}

function nearBottom() {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 120;
}

function scrollDown(force) {
  if (force || nearBottom()) requestAnimationFrame(() => { list.scrollTop = list.scrollHeight; });
}

// place inserts a sequenced item in seq order, before anything unsequenced
// at the tail (pending messages, the streaming reply, the rating card).
function place(el, seq) {
  el.dataset.seq = String(seq);
  for (const c of list.children) {
    if (c.dataset.tail !== undefined || (c.dataset.seq && Number(c.dataset.seq) > seq)) {
      list.insertBefore(el, c);
      return;
    }
  }
  list.append(el);
}

function tail(el) {
  el.dataset.tail = '';
  // The rating card stays last.
  const csat = list.querySelector('.csat');
  if (csat && el !== csat) list.insertBefore(el, csat);
  else list.append(el);
}

function sourcesEl(sources) {
  const uniq = [];
  const keys = new Set();
  for (const s of sources || []) {
    const k = s.document_id || s.title;
    if (!k || keys.has(k)) continue;
    keys.add(k);
    uniq.push(s);
  }
  if (!uniq.length) return null;
  return h('details', { class: 'sources' },
    h('summary', {}, T.sources(uniq.length)),
    h('ul', {}, uniq.map((s) => h('li', {}, icon(icons.file),
      s.url ? h('a', { href: s.url, target: '_blank', rel: 'noopener noreferrer' }, s.title || s.document_id)
        : h('span', {}, s.title || s.document_id)))));
}

function bubble(role, text, { who, time, sources, atts, cls = '' } = {}) {
  const whoText = role === 'customer' ? null : who;
  // A message of attachments only keeps an empty bubble, hidden.
  return h('li', { class: `msg msg-${role} ${cls}` },
    whoText ? h('div', { class: 'who' }, whoText) : h('span', { class: 'sr-only' }, `${T.you}:`),
    linkify(h('div', { class: text ? 'bubble' : 'bubble empty' }), text),
    attachmentsEl(atts, authedURL, attWords()),
    sourcesEl(sources),
    time ? h('div', { class: 'time' }, time) : null);
}

function messageEl(m) {
  const time = fmtTime(m.created_at, lang);
  if (m.role === 'system') return linkify(h('li', { class: 'note system' }), m.text);
  const atts = m.attachments;
  if (m.role === 'customer') return bubble('customer', m.text, { time, atts });
  if (m.role === 'agent') {
    return bubble('agent', m.text, { who: m.author_name || st.agentName || T.agent, time, atts });
  }
  return bubble('bot', m.text, { who: T.assistant, time, sources: m.meta?.sources, atts });
}

function greeting() {
  const g = params.get('greeting') || T.greeting;
  const el = bubble('bot', g.slice(0, 500), { who: T.assistant });
  el.dataset.head = '';
  list.append(el);
}

function setStatus() {
  const el = $('chat-status');
  const text = $('chat-status-text');
  el.classList.toggle('waiting', st.state === 'queued');
  el.classList.toggle('closed', st.state === 'closed');
  const key = { bot: 'status_bot', queued: 'status_queued', assigned: 'status_assigned', closed: 'status_closed' }[st.state] || 'status_bot';
  let status = fill(T[key], { name: st.agentName || T.agent });
  const pos = Number(st.queue?.position);
  if (st.state === 'queued' && pos > 0) status += ' · ' + fill(T.queue_pos, { n: pos });
  text.textContent = status;
  // Once a person is on the way or here, asking again only adds noise.
  $('human').hidden = st.state === 'queued' || st.state === 'assigned';
}

let connTimer = 0;
function setConn(text, ok) {
  clearTimeout(connTimer);
  if (!text) {
    conn.hidden = true;
    return;
  }
  conn.textContent = text;
  conn.classList.toggle('ok', !!ok);
  conn.hidden = false;
  if (ok) connTimer = setTimeout(() => { conn.hidden = true; }, 2500);
}

function notifyParent(msg) {
  if (embedded && window.parent !== window) window.parent.postMessage({ tandem: msg.type, ...msg }, '*');
}

function markUnread() {
  if (st.visible && document.visibilityState === 'visible') return;
  st.unread++;
  notifyParent({ type: 'unread', count: st.unread });
}

// ---- events from the server ----------------------------------------------

function onFrame(f) {
  // Stored events arrive in seq order; an ack's seq is our own message's,
  // which may be ahead of events not yet received, so it does not count.
  if (f.seq && f.type !== 'ack' && f.type !== 'error' && f.seq > st.streamSeq) st.streamSeq = f.seq;
  switch (f.type) {
    case 'message': if (f.message) showMessage(f.message); break;
    case 'state': showState(f); break;
    case 'typing': showTyping(f.role); break;
    case 'bot.delta': streamDelta(f.delta || ''); break;
    case 'csat.request': showCsat(f); break;
    case 'ack': if (!f.csat) onAck(f); break;
    case 'error': onError(f); break;
    default: break;
  }
}

function showMessage(m) {
  if (!m.seq || st.seen.has(m.seq)) return;
  st.seen.add(m.seq);
  if (m.role === 'customer' && m.client_msg_id) {
    st.outbox = st.outbox.filter((o) => o.id !== m.client_msg_id);
    save();
    list.querySelector(`[data-cid="${CSS.escape(m.client_msg_id)}"]`)?.remove();
  }
  if (m.role !== 'customer') {
    if (st.streaming && (m.role === 'bot' || m.role === 'system')) {
      st.streaming.remove();
      st.streaming = null;
    }
    hideTyping();
    if (m.role === 'agent' && m.author_name) st.agentName = m.author_name;
  }
  const el = messageEl(m);
  el.classList.add('arrive');
  place(el, m.seq);
  scrollDown(m.role === 'customer');
  if (m.role !== 'customer') markUnread();
}

function agentNameOf(d) {
  const a = d.agent;
  if (a && typeof a === 'object') return a.name || a.display_name || '';
  return d.agent_name || (typeof a === 'string' ? a : '');
}

// showState follows the conversation's state. The server tells the customer
// about the queue, the agent joining and the way back to the bot in system
// messages; the page mirrors the state in its header and marks the close.
function showState(f) {
  if (f.seq) {
    if (st.seen.has(f.seq)) return;
    st.seen.add(f.seq);
  }
  const d = (f.data && typeof f.data === 'object') ? f.data : {};
  st.state = f.state || st.state;
  st.queue = null;
  if (st.state === 'queued') st.queue = (d.queue && typeof d.queue === 'object') ? d.queue : null;
  if (st.state === 'assigned') st.agentName = agentNameOf(d) || st.agentName;
  setStatus();
  if (st.state !== 'closed') return;
  const el = h('li', { class: 'note state' }, h('span', {}, T.state_closed));
  if (f.seq) place(el, f.seq);
  else tail(el);
  scrollDown();
}

function showTyping(role) {
  if (!role || role === 'customer') return;
  const name = role === 'agent' ? (st.agentName || T.agent) : T.assistant;
  $('typing-text').textContent = fill(T.typing, { name });
  $('typing').hidden = false;
  clearTimeout(st.typingTimer);
  st.typingTimer = setTimeout(hideTyping, 6000);
  scrollDown();
}

function hideTyping() {
  clearTimeout(st.typingTimer);
  $('typing').hidden = true;
}

function streamDelta(delta) {
  if (!st.streaming) {
    st.streaming = bubble('bot', '', { who: T.assistant, cls: 'streaming' });
    // Screen readers hear the finished message instead of every fragment.
    st.streaming.setAttribute('aria-hidden', 'true');
    tail(st.streaming);
    hideTyping();
  }
  const b = st.streaming.querySelector('.bubble');
  b.classList.remove('empty');
  b.append(document.createTextNode(delta));
  scrollDown();
}

function showCsat(f) {
  if (f.seq) {
    if (st.seen.has(f.seq)) return;
    st.seen.add(f.seq);
  }
  try { if (localStorage.getItem(csatKey(f.seq))) return; } catch { /* ignore */ }
  list.querySelector('.csat')?.remove();
  let score = 0;
  const labels = [];
  const paint = (n) => labels.forEach((l, i) => l.classList.toggle('on', i < n));
  const stars = h('fieldset', { class: 'stars' }, h('legend', {}, T.csat_legend));
  for (let n = 1; n <= 5; n++) {
    const inp = h('input', { type: 'radio', name: 'csat', value: n, 'aria-label': T.csat_star(n) });
    inp.addEventListener('change', () => { score = n; paint(n); submit.disabled = false; });
    const lab = h('label', { title: T.csat_star(n) }, inp, icon(icons.star));
    lab.addEventListener('mouseenter', () => paint(n));
    lab.addEventListener('mouseleave', () => paint(score));
    labels.push(lab);
    stars.append(lab);
  }
  const comment = h('textarea', { 'aria-label': T.csat_comment, placeholder: T.csat_comment, maxlength: 1000 });
  const submit = h('button', { type: 'submit', class: 'btn-primary', disabled: true }, T.csat_send);
  const form = h('form', { class: 'csat-form' }, stars, comment, submit);
  const card = h('li', { class: 'csat', 'aria-label': T.csat_title }, h('h2', {}, T.csat_title), form);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!score) return;
    st.pendingCsat = { type: 'csat', score, comment: comment.value.trim() };
    sendCsat();
    try { localStorage.setItem(csatKey(f.seq), String(score)); } catch { /* ignore */ }
    form.replaceWith(h('p', { class: 'csat-done', role: 'status' }, icon(icons.check), T.csat_thanks));
  });
  tail(card);
  scrollDown(true);
}

function sendCsat() {
  if (st.pendingCsat && st.ws?.readyState === WebSocket.OPEN) {
    st.ws.send(JSON.stringify(st.pendingCsat));
    st.pendingCsat = null;
  }
}

function onAck(f) {
  const el = f.client_msg_id && list.querySelector(`[data-cid="${CSS.escape(f.client_msg_id)}"]`);
  if (el) {
    el.classList.remove('pending');
    el.querySelector('.time').textContent = fmtTime(new Date(), lang);
  }
}

function onError(f) {
  const id = f.client_msg_id;
  if (!id) return;
  const item = st.outbox.find((o) => o.id === id);
  st.outbox = st.outbox.filter((o) => o.id !== id);
  save();
  const el = list.querySelector(`[data-cid="${CSS.escape(id)}"]`);
  if (!el) return;
  el.classList.remove('pending');
  el.classList.add('failed');
  const t = el.querySelector('.time');
  t.textContent = `${T.failed}: ${f.error?.message || ''}`;
  if (item) {
    t.append(h('button', { type: 'button', class: 'retry', onclick: () => { el.remove(); queue(item.text, item.atts); } }, T.retry));
  }
}

// ---- sending ---------------------------------------------------------------

function pendingEl(item) {
  const el = bubble('customer', item.text, { time: T.sending, cls: 'pending', atts: item.atts });
  el.dataset.cid = item.id;
  tail(el);
  scrollDown(true);
}

// queue sends a message: text, attachments already uploaded, or both.
function queue(text, atts = []) {
  text = text.trim();
  if (!text && !atts.length) return;
  const item = { id: uuid(), text };
  if (atts.length) {
    item.attachments = atts.map((a) => a.id);
    item.atts = atts;
  }
  st.outbox.push(item);
  save();
  pendingEl(item);
  start();
}

// start makes sure there is a conversation and a socket, then sends.
async function start() {
  if (!st.conv) {
    try {
      await create();
    } catch {
      setConn(T.unreachable);
      clearTimeout(st.timer);
      st.timer = setTimeout(start, backoff());
      return;
    }
  }
  if (!st.ws) connect();
  else flush();
}

function create() {
  if (!st.creating) {
    const customer = {};
    for (const k of ['external_id', 'name', 'email']) if (typeof identity[k] === 'string' && identity[k]) customer[k] = identity[k];
    customer.locale = navigator.language || lang;
    if (identity.attributes && typeof identity.attributes === 'object') customer.attributes = identity.attributes;
    const body = { customer };
    if (verifiable) body.user_hash = identity.user_hash;
    const post = () => fetch('/api/v1/conversations', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    st.creating = post().then(async (r) => {
      if (r.status === 403 && body.user_hash) {
        // The site's hash does not match: chat on, as a customer nobody
        // vouched for, without the earlier conversations.
        delete body.user_hash;
        verifiable = false;
        $('chat-history').hidden = true;
        r = await post();
      }
      if (!r.ok) throw new Error(`create: ${r.status}`);
      const c = await r.json();
      st.conv = { id: c.id, token: c.token };
      st.streamSeq = 0;
      st.seen.clear();
      save();
      st.attempt = 0;
    }).finally(() => { st.creating = null; });
  }
  return st.creating;
}

// flush sends every message not yet stored once on the current socket; the
// server stores one message per client_msg_id, so resending is safe.
function flush() {
  const ws = st.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  for (const item of st.outbox) {
    if (item.gen === st.gen) continue;
    item.gen = st.gen;
    ws.send(JSON.stringify({ type: 'message', text: item.text, client_msg_id: item.id, attachments: item.attachments || [] }));
  }
  sendCsat();
}

function sendTyping() {
  const now = Date.now();
  if (now - st.lastTypingSent < 3000 || st.ws?.readyState !== WebSocket.OPEN) return;
  st.lastTypingSent = now;
  st.ws.send('{"type":"typing"}');
}

// ---- the socket ------------------------------------------------------------

function backoff() {
  const n = st.attempt++;
  return Math.min(15000, 500 * 2 ** n) * (0.75 + Math.random() / 2);
}

function connect() {
  if (!st.conv) return;
  clearTimeout(st.timer);
  if (st.ws) {
    st.ws.onclose = null;
    st.ws.close();
  }
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${proto}://${location.host}/ws/conversations/${encodeURIComponent(st.conv.id)}` +
    `?token=${encodeURIComponent(st.conv.token)}&after=${st.streamSeq}`;
  const ws = new WebSocket(url);
  st.ws = ws;
  const gen = ++st.gen;
  ws.onopen = () => {
    if (st.ws !== ws) return;
    const wasDown = st.attempt > 0;
    st.attempt = 0;
    document.body.dataset.connected = 'true';
    setConn(wasDown && st.everOpen ? T.reconnected : null, true);
    st.everOpen = true;
    flush();
  };
  ws.onmessage = (e) => {
    if (st.ws !== ws) return;
    let f;
    try { f = JSON.parse(e.data); } catch { return; }
    onFrame(f);
  };
  ws.onclose = () => {
    if (st.ws !== ws) return;
    st.ws = null;
    document.body.dataset.connected = 'false';
    // A half-streamed reply is replaced by the stored one on replay.
    if (st.streaming) { st.streaming.remove(); st.streaming = null; }
    for (const item of st.outbox) if (item.gen === gen) item.gen = 0;
    reconnectLater();
  };
}

function reconnectLater() {
  if (!st.conv) return;
  const delay = backoff();
  setConn(st.everOpen ? T.reconnecting : T.connecting);
  if (st.attempt >= 3) verify();
  clearTimeout(st.timer);
  st.timer = setTimeout(connect, delay);
}

// verify checks, after repeated failures, that the stored conversation still
// exists; when it is gone, the chat starts afresh and resends what is pending.
async function verify() {
  const conv = st.conv;
  try {
    const r = await fetch(`/api/v1/conversations/${encodeURIComponent(conv.id)}`, {
      headers: { Authorization: `Bearer ${conv.token}` },
    });
    if (st.conv !== conv || ![401, 403, 404].includes(r.status)) return;
  } catch { return; }
  const pending = st.outbox.map((o) => o.text);
  reset();
  list.append(h('li', { class: 'note' }, T.gone));
  for (const t of pending) queue(t);
}

function reset() {
  clearTimeout(st.timer);
  if (st.ws) { st.ws.onclose = null; st.ws.close(); }
  Object.assign(st, { conv: null, ws: null, outbox: [], streamSeq: 0, attempt: 0, state: 'bot', agentName: '', queue: null, streaming: null, everOpen: false });
  st.seen.clear();
  clearStaged();
  blobs.clear();
  save();
  list.replaceChildren();
  greeting();
  setStatus();
  setConn(null);
}

// ---- attachments ---------------------------------------------------------------

// stage uploads picked, pasted or dropped files at once, into the
// conversation (started if need be); the next message carries those that
// made it. The server decides what is accepted and says why not.
async function stage(files) {
  for (const file of files) {
    if (st.staged.length >= 10) {
      setConn(T.attach_too_many, true);
      break;
    }
    const item = { key: uuid(), file, status: 'uploading' };
    if (file.type.startsWith('image/')) item.preview = URL.createObjectURL(file);
    st.staged.push(item);
    drawStaged();
    upload(item);
  }
}

async function upload(item) {
  try {
    if (!st.conv) await create();
    if (!st.ws) connect();
    const conv = st.conv;
    const form = new FormData();
    form.append('file', item.file, item.file.name || 'pasted-image.png');
    const r = await fetch(`/api/v1/conversations/${encodeURIComponent(conv.id)}/attachments`, {
      method: 'POST', headers: { Authorization: `Bearer ${conv.token}` }, body: form,
    });
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new Error(data?.error?.message || `HTTP ${r.status}`);
    if (st.conv !== conv) return; // a new conversation started meanwhile
    item.status = 'ready';
    item.att = data;
  } catch (e) {
    item.status = 'failed';
    item.error = e.message === 'Failed to fetch' ? T.unreachable : e.message;
  }
  drawStaged();
}

function clearStaged() {
  for (const x of st.staged) if (x.preview) URL.revokeObjectURL(x.preview);
  st.staged = [];
  drawStaged();
}

// drawStaged shows the files waiting for the next message, above the box.
function drawStaged() {
  const ul = $('staged');
  ul.hidden = !st.staged.length;
  ul.replaceChildren(...st.staged.map((x) => {
    const remove = h('button', { type: 'button', class: 'staged-remove', 'aria-label': `${T.attach_remove} ${x.file.name}`, title: T.attach_remove },
      icon(icons.close));
    remove.addEventListener('click', () => {
      if (x.preview) URL.revokeObjectURL(x.preview);
      st.staged = st.staged.filter((y) => y !== x);
      drawStaged();
      input.focus();
    });
    const status = { uploading: T.attach_uploading, ready: fmtSize(x.file.size), failed: `${T.attach_failed}: ${x.error || ''}` }[x.status];
    return h('li', { class: `staged-item ${x.status}`, dataset: { status: x.status }, title: x.file.name },
      x.preview ? h('img', { src: x.preview, alt: '' }) : icon(icons.file),
      h('span', { class: 'staged-text' }, h('span', { class: 'staged-name' }, x.file.name || 'image'), h('span', { class: 'staged-status' }, status)),
      remove);
  }));
  const busy = st.staged.some((x) => x.status === 'uploading');
  $('send').classList.toggle('busy', busy);
}

// ---- earlier conversations (verified customers) ---------------------------

const historyEl = $('history');
const historyBody = $('history-body');

function fmtDay(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US', { dateStyle: 'medium', timeStyle: 'short' });
}

// historyAPI calls a customers/me endpoint with the conversation token,
// which proves who the customer is; it starts the conversation if need be.
async function historyAPI(path) {
  if (!st.conv) await create();
  const r = await fetch(path, { headers: { Authorization: `Bearer ${st.conv.token}` } });
  if (!r.ok) throw new Error(`history: ${r.status}`);
  return r.json();
}

function showHistory(on) {
  $('chat').classList.toggle('show-history', on);
  historyEl.hidden = !on;
  $('chat-history').setAttribute('aria-expanded', String(on));
  if (on) historyBody.focus();
  else input.focus();
}

async function openHistory() {
  showHistory(true);
  historyBody.replaceChildren(h('p', { class: 'history-note' }, T.history_loading));
  let data;
  try {
    data = await historyAPI('/api/v1/customers/me/conversations');
  } catch {
    historyBody.replaceChildren(h('p', { class: 'history-note', role: 'alert' }, T.history_unavailable));
    return;
  }
  const past = (data.conversations || []).filter((c) => !c.current && c.messages > 0);
  if (!past.length) {
    historyBody.replaceChildren(h('p', { class: 'history-note' }, T.history_empty));
    return;
  }
  historyBody.replaceChildren(h('ul', { class: 'history-list' }, past.map((c) => h('li', {},
    h('button', { type: 'button', class: 'history-item', dataset: { id: c.id }, onclick: () => openPast(c) },
      h('span', { class: 'when' }, `${fmtDay(c.created_at)} · ${T.history_messages(c.messages)}`),
      h('span', { class: 'preview' }, c.preview || ''))))));
}

async function openPast(c) {
  historyBody.replaceChildren(h('p', { class: 'history-note' }, T.history_loading));
  let data;
  try {
    data = await historyAPI(`/api/v1/customers/me/conversations/${encodeURIComponent(c.id)}/messages`);
  } catch {
    historyBody.replaceChildren(h('p', { class: 'history-note', role: 'alert' }, T.history_unavailable));
    return;
  }
  const back = h('button', { type: 'button', class: 'chip', onclick: openHistory }, T.history_list);
  historyBody.replaceChildren(
    h('p', { class: 'history-note' }, fmtDay(c.created_at)),
    h('ol', { class: 'history-transcript', dataset: { id: c.id } }, (data.messages || []).map(messageEl)),
    h('p', {}, back));
  historyBody.focus();
}

// ---- wiring ----------------------------------------------------------------

function autosize() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight + 2, 140)}px`;
}

function init() {
  applyStrings();
  if (embedded) {
    document.body.classList.add('embedded');
    $('chat-close').hidden = false;
    $('chat-close').addEventListener('click', () => notifyParent({ type: 'close' }));
    window.addEventListener('message', (e) => {
      if (e.source !== window.parent || !e.data || typeof e.data !== 'object') return;
      if (e.data.tandem === 'open') {
        st.visible = true;
        st.unread = 0;
        scrollDown(true);
        input.focus();
      } else if (e.data.tandem === 'hidden') {
        st.visible = false;
      }
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') notifyParent({ type: 'close' });
    });
  }
  greeting();
  setStatus();

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value;
    if (st.staged.some((x) => x.status === 'uploading')) {
      setConn(T.attach_wait, true);
      return;
    }
    const ready = st.staged.filter((x) => x.status === 'ready').map((x) => x.att);
    if (!text.trim() && !ready.length) return;
    input.value = '';
    autosize();
    queue(text, ready);
    st.staged = st.staged.filter((x) => x.status !== 'ready');
    drawStaged();
    input.focus();
  });
  $('attach').addEventListener('click', () => $('attach-input').click());
  $('attach-input').addEventListener('change', (e) => {
    stage([...e.target.files]);
    e.target.value = '';
  });
  // A screenshot pasted into the box, or files dropped on the chat.
  input.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) {
      e.preventDefault();
      stage(files);
    }
  });
  const chat = $('chat');
  let drags = 0;
  chat.addEventListener('dragenter', (e) => {
    if (![...(e.dataTransfer?.types || [])].includes('Files')) return;
    e.preventDefault();
    drags++;
    chat.classList.add('dropping');
  });
  chat.addEventListener('dragover', (e) => {
    if ([...(e.dataTransfer?.types || [])].includes('Files')) e.preventDefault();
  });
  chat.addEventListener('dragleave', () => { if (--drags <= 0) { drags = 0; chat.classList.remove('dropping'); } });
  chat.addEventListener('drop', (e) => {
    drags = 0;
    chat.classList.remove('dropping');
    const files = [...(e.dataTransfer?.files || [])];
    if (!files.length) return;
    e.preventDefault();
    stage(files);
  });
  chat.dataset.dropText = T.attach_drop;
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  input.addEventListener('input', () => { autosize(); if (input.value.trim()) sendTyping(); });
  $('human').addEventListener('click', () => queue(T.human_request));
  $('chat-history').hidden = !verifiable;
  $('chat-history').addEventListener('click', () => (historyEl.hidden ? openHistory() : showHistory(false)));
  $('history-back').addEventListener('click', () => showHistory(false));
  $('chat-new').addEventListener('click', () => {
    if (st.conv && !confirm(T.confirm_new)) return;
    reset();
    input.focus();
  });
  window.addEventListener('online', () => { if (st.conv && !st.ws) connect(); });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      if (st.visible) st.unread = 0;
      if (st.conv && !st.ws) connect();
    }
  });

  const saved = load();
  if (saved) {
    st.conv = { id: saved.id, token: saved.token };
    st.outbox = Array.isArray(saved.outbox)
      ? saved.outbox.filter((o) => o && o.id && (o.text || (Array.isArray(o.attachments) && o.attachments.length))) : [];
    st.outbox.forEach(pendingEl);
    connect();
  }
  if (!embedded) input.focus();
  document.body.dataset.ready = 'true';
  notifyParent({ type: 'ready' });
}

init();
