// lib.js: small helpers shared by every Tandem page (no dependencies).

// h builds an element: h('div', {class: 'x', onclick: f}, 'text', child).
// Text is always set as text, never parsed as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// svg builds an inline icon from path data (24x24 view box).
export function icon(d, cls = 'icon') {
  const ns = 'http://www.w3.org/2000/svg';
  const s = document.createElementNS(ns, 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('class', cls);
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('focusable', 'false');
  for (const part of [].concat(d)) {
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', part);
    s.append(p);
  }
  return s;
}

// Icons (stroke paths, Feather-like).
export const icons = {
  send: ['M22 2 11 13', 'M22 2 15 22l-4-9-9-4 20-7z'],
  person: ['M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2', 'M12 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z'],
  close: ['M18 6 6 18', 'M6 6l12 12'],
  chat: ['M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z'],
  book: ['M4 19.5A2.5 2.5 0 0 1 6.5 17H20', 'M6.5 2H20v20H6.5A2.5 2.5 0 0 1 4 19.5v-15A2.5 2.5 0 0 1 6.5 2z'],
  upload: ['M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4', 'M17 8l-5-5-5 5', 'M12 3v12'],
  trash: ['M3 6h18', 'M8 6V4h8v2', 'M19 6l-1 14H6L5 6'],
  refresh: ['M23 4v6h-6', 'M1 20v-6h6', 'M3.5 9a9 9 0 0 1 14.9-3.4L23 10M1 14l4.6 4.4A9 9 0 0 0 20.5 15'],
  star: ['M12 2l3.1 6.3 6.9 1-5 4.9 1.2 6.8L12 17.8 5.8 21l1.2-6.8-5-4.9 6.9-1z'],
  more: ['M12 13a1 1 0 1 0 0-2 1 1 0 0 0 0 2z', 'M19 13a1 1 0 1 0 0-2 1 1 0 0 0 0 2z', 'M5 13a1 1 0 1 0 0-2 1 1 0 0 0 0 2z'],
  bot: ['M12 8V4H8', 'M4 8h16v12H4z', 'M2 14h2', 'M20 14h2', 'M15 13v2', 'M9 13v2'],
  file: ['M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z', 'M14 2v6h6'],
  check: ['M20 6 9 17l-5-5'],
  alert: ['M12 9v4', 'M12 17h.01', 'M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z'],
  inbox: ['M22 12h-6l-2 3h-4l-2-3H2', 'M5.5 5.1 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.5-6.9A2 2 0 0 0 16.8 4H7.2a2 2 0 0 0-1.7 1.1z'],
  chart: ['M18 20V10', 'M12 20V4', 'M6 20v-6'],
  search: ['M11 19a8 8 0 1 0 0-16 8 8 0 0 0 0 16z', 'M21 21l-4.35-4.35'],
  clip: ['M21.4 11.1l-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5'],
  image: ['M19 3H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2V5a2 2 0 0 0-2-2z', 'M8.5 10a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3z', 'M21 15l-5-5L5 21'],
};

// uuid returns a random UUID v4, also outside secure contexts.
export function uuid() {
  if (crypto.randomUUID) {
    try { return crypto.randomUUID(); } catch { /* not a secure context */ }
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// pickLang chooses the interface language: an explicit choice, else the
// browser's; Chinese for any zh-*, English otherwise.
export function pickLang(explicit) {
  const l = (explicit || navigator.language || 'en').toLowerCase();
  return l.startsWith('zh') ? 'zh' : 'en';
}

// fmtTime formats a time of day in the given language.
export function fmtTime(t, lang) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en-US', { hour: '2-digit', minute: '2-digit' });
}

// fmtDuration formats seconds as "45s", "3m", "1h 5m".
export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return `${sec}s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m}m`;
  const hr = Math.floor(m / 60);
  return `${hr}h ${m % 60}m`;
}

// fmtAgo formats a past time relative to now.
export function fmtAgo(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  const s = (Date.now() - d.getTime()) / 1000;
  if (s < 45) return 'just now';
  return `${fmtDuration(s)} ago`;
}

// linkify appends text to el, turning http(s) links into anchors that open
// in a new tab; everything else stays plain text.
export function linkify(el, text) {
  const re = /\bhttps?:\/\/[^\s<>"')\]]+/g;
  let last = 0;
  for (const m of String(text).matchAll(re)) {
    el.append(document.createTextNode(text.slice(last, m.index)));
    const url = m[0].replace(/[.,;:!?]+$/, '');
    el.append(h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, url));
    last = m.index + url.length;
  }
  el.append(document.createTextNode(String(text).slice(last)));
  return el;
}

// fmtSize says a file size: "830 KB", "2.4 MB".
export function fmtSize(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MB`;
}

// thumbBox is the size a thumbnail is shown at (CSS pixels): the photo's
// proportions within max×max, known before it loads so nothing jumps.
function thumbBox(a, max) {
  const w = Number(a.width) || max;
  const hgt = Number(a.height) || max;
  const k = Math.min(1, max / Math.max(w, hgt));
  return { w: Math.max(24, Math.round(w * k)), h: Math.max(24, Math.round(hgt * k)) };
}

// attachmentsEl shows a message's attachments: photos as thumbnails that
// open the whole picture, other files as links with their size. src(url)
// resolves to a URL the page may show: a blob: URL for the customer, whose
// token must not go in a URL, or the path itself for staff (their session
// cookie goes along). t holds the words: {open, download}.
export function attachmentsEl(atts, src, t = {}) {
  if (!Array.isArray(atts) || !atts.length) return null;
  return h('div', { class: 'atts' }, atts.map((a) => {
    const file = () => {
      const link = h('a', { class: 'att-file', href: '#', title: `${t.download || 'Download'} ${a.name}`, dataset: { id: a.id } },
        icon(icons.file), h('span', { class: 'att-name' }, a.name), h('span', { class: 'att-size' }, fmtSize(a.size)));
      link.addEventListener('click', (e) => {
        e.preventDefault();
        src(a.url).then((u) => {
          const dl = h('a', { href: u, download: a.name, hidden: true });
          document.body.append(dl);
          dl.click();
          dl.remove();
        }).catch(() => link.classList.add('failed'));
      });
      return link;
    };
    if (!a.thumbnail_url) return file();
    const box = thumbBox(a, 220);
    const img = h('img', { class: 'att-thumb', alt: a.name, width: box.w, height: box.h, dataset: { id: a.id } });
    const btn = h('button', { type: 'button', class: 'att-img', title: `${t.open || 'Open'} ${a.name}`, 'aria-label': `${t.open || 'Open'} ${a.name}` }, img);
    btn.addEventListener('click', () => viewImage(a, src, t));
    src(a.thumbnail_url).then((u) => { img.src = u; }).catch(() => btn.replaceWith(file()));
    return btn;
  }));
}

// viewImage shows a photo whole, in a dialog over the page.
function viewImage(a, src, t) {
  const img = h('img', { alt: a.name });
  const close = h('button', { type: 'button', class: 'icon-btn att-close', 'aria-label': t.close || 'Close', title: t.close || 'Close' }, icon(icons.close));
  const dlg = h('dialog', { class: 'att-viewer', 'aria-label': a.name }, close, img, h('p', { class: 'att-caption' }, a.name));
  close.addEventListener('click', () => dlg.close());
  dlg.addEventListener('click', (e) => { if (e.target === dlg) dlg.close(); });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  src(a.url).then((u) => { img.src = u; }).catch(() => { img.alt = `${a.name} (${t.unavailable || 'unavailable'})`; });
}
