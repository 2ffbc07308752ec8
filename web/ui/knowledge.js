// knowledge.js: the knowledge editor on /knowledge: upload documents (drag
// and drop, several at once, with progress), browse their versions and
// chunks, replace and delete them, test what the bot would answer, and turn
// unanswered questions into FAQ entries.
import { api, upload, toast, unavailable, boot, h, icon, icons } from './staff.js';
import { fmtAgo } from './lib.js';

const ACCEPT = '.md,.markdown,.txt,.text,.html,.htm,.pdf,.csv,.json';
const st = { docs: [], selected: null, tab: 'doc', filter: '', unanswered: null };
const el = {};

boot({ title: 'Knowledge editor', role: 'editor', current: '/knowledge', render });

function fmtBytes(n) {
  if (!Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

const FORMAT_NAMES = { markdown: 'Markdown', text: 'Text', html: 'HTML', pdf: 'PDF', csv: 'CSV FAQ', json: 'JSON FAQ' };

function render(user, main) {
  el.docCount = h('span', { class: 'count' }, '0');
  el.docs = h('ul', { class: 'docs', id: 'docs', 'aria-label': 'Documents' });
  el.uploads = h('div', { class: 'uploads', 'aria-live': 'polite' });
  el.fileInput = h('input', { type: 'file', id: 'upload-input', multiple: true, accept: ACCEPT, class: 'sr-only' });
  el.fileInput.addEventListener('change', () => { uploadFiles([...el.fileInput.files]); el.fileInput.value = ''; });
  const drop = h('label', { class: 'dropzone', for: 'upload-input' },
    icon(icons.upload),
    h('strong', {}, 'Drop files here, or choose files'),
    h('span', { class: 'hint' }, 'Markdown, HTML, PDF, text, and FAQ sheets (CSV or JSON with question and answer columns). Up to 20 MB each.'),
    el.fileInput);
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    uploadFiles([...(e.dataTransfer?.files || [])]);
  });
  // The whole page accepts drops too, so a near miss does not open the file.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => { e.preventDefault(); if (!drop.contains(e.target)) uploadFiles([...(e.dataTransfer?.files || [])]); });

  const filter = h('input', { type: 'search', class: 'input doc-filter', placeholder: 'Filter by title or tag', 'aria-label': 'Filter documents' });
  filter.addEventListener('input', () => { st.filter = filter.value.trim().toLowerCase(); drawDocs(); });

  el.tabs = {};
  el.panels = {};
  const tabDefs = [['doc', 'Document'], ['test', 'Test the bot'], ['unanswered', 'Unanswered questions']];
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Editor' });
  for (const [key, label] of tabDefs) {
    const b = h('button', { type: 'button', role: 'tab', id: `tab-${key}`, 'aria-controls': `panel-${key}` }, label);
    if (key === 'unanswered') { el.unansweredCount = h('span', { class: 'count', hidden: true }); b.append(el.unansweredCount); }
    b.addEventListener('click', () => showTab(key));
    b.addEventListener('keydown', (e) => {
      const i = tabDefs.findIndex(([k]) => k === key);
      const next = e.key === 'ArrowRight' ? tabDefs[(i + 1) % 3] : e.key === 'ArrowLeft' ? tabDefs[(i + 2) % 3] : null;
      if (next) { e.preventDefault(); showTab(next[0]); el.tabs[next[0]].focus(); }
    });
    el.tabs[key] = b;
    tablist.append(b);
    el.panels[key] = h('div', { class: 'card-body', role: 'tabpanel', id: `panel-${key}`, 'aria-labelledby': `tab-${key}` });
  }

  main.append(h('div', { class: 'page' },
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Knowledge'), h('p', {}, 'The documents the bot answers from. Every upload is versioned; the bot uses the newest version.')),
      h('div', { class: 'btn-row' }, h('button', { type: 'button', class: 'btn', onclick: () => showTab('test') }, icon(icons.bot), 'Test the bot'))),
    h('div', { class: 'kb' },
      h('div', {},
        h('section', { class: 'card', 'aria-labelledby': 'upload-title' },
          h('div', { class: 'card-head' }, h('h2', { id: 'upload-title' }, 'Upload')),
          h('div', { class: 'card-body' }, drop, el.uploads)),
        h('section', { class: 'card', 'aria-labelledby': 'docs-title' },
          h('div', { class: 'card-head' }, h('h2', { id: 'docs-title' }, 'Documents ', el.docCount),
            h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Reload the list', title: 'Reload', onclick: loadDocs }, icon(icons.refresh))),
          filter, el.docs)),
      h('section', { class: 'card', 'aria-label': 'Details' }, tablist, ...Object.values(el.panels)))));

  buildTestPanel();
  showTab('doc');
  loadDocs();
  loadUnanswered();
}

function showTab(key) {
  st.tab = key;
  for (const [k, b] of Object.entries(el.tabs)) {
    b.setAttribute('aria-selected', String(k === key));
    b.tabIndex = k === key ? 0 : -1;
    el.panels[k].hidden = k !== key;
  }
  if (key === 'doc') drawDoc();
  if (key === 'unanswered') drawUnanswered();
  if (key === 'test') el.testText?.focus();
}

// ---- documents ---------------------------------------------------------

async function loadDocs() {
  const r = await api('GET', '/api/v1/knowledge/documents');
  if (!r.ok) {
    el.docs.replaceChildren(h('li', {}, unavailable('the document list', r)));
    return;
  }
  st.docs = r.data.documents || [];
  st.docs.sort((a, b) => new Date(b.updated_at) - new Date(a.updated_at));
  drawDocs();
}

function drawDocs() {
  el.docCount.textContent = String(st.docs.length);
  const shown = st.docs.filter((d) => !st.filter || (d.title || '').toLowerCase().includes(st.filter) ||
    (d.source_name || '').toLowerCase().includes(st.filter) || (d.tags || []).some((t) => t.toLowerCase().includes(st.filter)));
  if (!shown.length) {
    el.docs.replaceChildren(h('li', { class: 'empty' }, icon(icons.book),
      st.docs.length ? 'No document matches the filter.' : 'No documents yet. Upload your help articles and FAQ sheets to get started.'));
    return;
  }
  el.docs.replaceChildren(...shown.map((d) => h('li', { dataset: { id: d.id } },
    h('button', { type: 'button', 'aria-current': String(st.selected === d.id), onclick: () => select(d.id) },
      icon(icons.file),
      h('span', { class: 'title' }, d.title || d.source_name),
      h('span', { class: 'meta' },
        h('span', {}, FORMAT_NAMES[d.format] || d.format),
        h('span', {}, `v${d.version}`),
        h('span', {}, `${d.chunks} ${d.chunks === 1 ? 'chunk' : 'chunks'}`),
        h('span', {}, fmtAgo(d.updated_at)))))));
}

function select(id) {
  st.selected = id;
  drawDocs();
  showTab('doc');
}

async function drawDoc() {
  const panel = el.panels.doc;
  if (!st.selected) {
    panel.replaceChildren(h('div', { class: 'empty' }, icon(icons.book), 'Select a document to see its versions and chunks.'));
    return;
  }
  const id = st.selected;
  panel.replaceChildren(h('p', { class: 'empty' }, 'Loading…'));
  const r = await api('GET', `/api/v1/knowledge/documents/${encodeURIComponent(id)}`);
  if (st.selected !== id) return;
  if (!r.ok) {
    panel.replaceChildren(r.status === 404 ? h('div', { class: 'empty' }, 'This document no longer exists.') : unavailable('this document', r));
    if (r.status === 404) loadDocs();
    return;
  }
  const { document: d, chunks = [], versions = [] } = r.data;
  const replaceInput = h('input', { type: 'file', accept: ACCEPT, class: 'sr-only', id: 'replace-input' });
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  replaceInput.addEventListener('change', async () => {
    const f = replaceInput.files[0];
    if (!f) return;
    const form = new FormData();
    form.append('file', f);
    progress.hidden = false;
    const res = await upload('PUT', `/api/v1/knowledge/documents/${encodeURIComponent(id)}`, form, (p) => { progress.value = p; });
    progress.hidden = true;
    if (!res.ok) { toast(`Could not replace: ${res.error?.message}`, 'bad'); return; }
    toast(res.data.changed === false ? 'Same content as the current version: nothing changed.' : `Saved as version ${res.data.version} (${res.data.chunks} chunks).`, 'ok');
    loadDocs();
    drawDoc();
  });
  const del = async () => {
    if (!confirm(`Delete “${d.title}”? The bot stops using it at once.`)) return;
    const res = await api('DELETE', `/api/v1/knowledge/documents/${encodeURIComponent(id)}`);
    if (!res.ok) { toast(`Could not delete: ${res.error?.message}`, 'bad'); return; }
    toast(`Deleted “${d.title}”.`, 'ok');
    st.selected = null;
    loadDocs();
    drawDoc();
  };
  const kv = (k, v) => h('div', {}, h('dt', {}, k), h('dd', {}, v));
  panel.replaceChildren(
    h('div', { class: 'doc-head' },
      h('div', {}, h('h2', { id: 'doc-title' }, d.title), h('p', { class: 'muted small' }, d.source_name)),
      h('div', { class: 'btn-row' },
        h('label', { class: 'btn', for: 'replace-input' }, icon(icons.upload), 'Upload new version', replaceInput),
        h('button', { type: 'button', class: 'btn danger', onclick: del }, icon(icons.trash), 'Delete'))),
    progress,
    h('dl', { class: 'kv' },
      kv('Format', FORMAT_NAMES[d.format] || d.format), kv('Version', `v${d.version}`), kv('Chunks', String(d.chunks)),
      kv('Size', fmtBytes(d.size_bytes)), kv('Updated', fmtAgo(d.updated_at)), kv('Tags', (d.tags || []).join(', ') || '—')),
    h('h3', { class: 'section-title' }, 'Versions'),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {}, 'Title'), h('th', {}, 'Chunks'), h('th', {}, 'Size'), h('th', {}, 'Loaded'))),
      h('tbody', {}, versions.map((v) => h('tr', {},
        h('td', {}, `v${v.version}`, v.version === d.version ? h('span', { class: 'badge ok' }, 'current') : null),
        h('td', {}, v.title), h('td', {}, String(v.chunks)), h('td', {}, fmtBytes(v.size_bytes)),
        h('td', { title: new Date(v.created_at).toLocaleString() }, fmtAgo(v.created_at)))))),
    h('h3', { class: 'section-title' }, `Chunks (${chunks.length})`),
    h('div', { class: 'chunks' }, chunks.map((c) => {
      const box = h('div', { class: 'chunk', tabindex: 0, role: 'button', 'aria-expanded': 'false' },
        h('div', { class: 'chunk-head' }, h('span', { class: 'badge' }, `#${c.ordinal + 1}`), c.heading ? h('span', {}, c.heading) : null,
          (c.tags || []).map((t) => h('span', { class: 'badge accent' }, t))),
        c.question ? h('div', { class: 'q' }, c.question) : null,
        h('div', { class: 'text' }, c.text));
      const toggle = () => { box.classList.toggle('open'); box.setAttribute('aria-expanded', String(box.classList.contains('open'))); };
      box.addEventListener('click', toggle);
      box.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } });
      return box;
    })));
}

// ---- uploads -----------------------------------------------------------

async function uploadFiles(files) {
  if (!files.length) return;
  const jobs = files.map((f) => {
    const bar = h('progress', { max: 1, value: 0, 'aria-label': `Uploading ${f.name}` });
    const status = h('span', { class: 'status muted' }, 'Waiting…');
    const row = h('div', { class: 'upload' }, h('div', { class: 'row' }, h('span', { class: 'name' }, f.name), status), bar);
    el.uploads.prepend(row);
    return { f, row, bar, status };
  });
  // Two at a time: each upload is parsed and embedded by the server.
  const queue = [...jobs];
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      job.status.textContent = 'Uploading…';
      const form = new FormData();
      form.append('file', job.f);
      const r = await upload('POST', '/api/v1/knowledge/documents', form, (p) => {
        job.bar.value = p;
        if (p >= 1) job.status.textContent = 'Processing…';
      });
      job.bar.value = 1;
      if (r.ok) {
        job.row.classList.add('done');
        job.status.textContent = r.data.created === false ? 'Already loaded (same content)' : `Added · v${r.data.version} · ${r.data.chunks} chunks`;
        if (r.data.id) st.selected = st.selected || r.data.id;
      } else {
        job.row.classList.add('failed');
        job.status.textContent = r.error?.message || 'Upload failed';
      }
      loadDocs();
    }
  };
  await Promise.all([worker(), worker()]);
  setTimeout(() => jobs.forEach((j) => j.row.classList.contains('done') && j.row.remove()), 8000);
  if (st.tab === 'doc') drawDoc();
}

// ---- test the bot --------------------------------------------------------

function buildTestPanel() {
  el.testText = h('textarea', { id: 'test-text', class: 'input', rows: 3, placeholder: 'Ask what a customer would ask, e.g. “How long do refunds take?”' });
  el.testResult = h('div', { class: 'result', id: 'test-result', 'aria-live': 'polite' });
  const run = h('button', { type: 'submit', class: 'btn primary', id: 'test-run' }, icon(icons.send), 'Ask');
  const form = h('form', {},
    h('div', { class: 'field' }, h('label', { for: 'test-text' }, 'Question'), el.testText,
      h('span', { class: 'hint' }, 'Runs the whole bot pipeline without talking to a customer: nothing is stored.')),
    run);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = el.testText.value.trim();
    if (!text) return;
    run.disabled = true;
    el.testResult.replaceChildren(h('p', { class: 'muted' }, 'Asking…'));
    const [preview, search] = await Promise.all([
      api('POST', '/api/v1/bot/preview', { text }),
      api('POST', '/api/v1/knowledge/search', { query: text, k: 5 }),
    ]);
    run.disabled = false;
    drawTest(preview, search);
  });
  el.testText.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  el.panels.test.append(form, el.testResult);
}

const DECISIONS = { answer: ['ok', 'Answers'], clarify: ['warn', 'Asks to clarify'], escalate: ['bad', 'Hands off to a person'] };

function sourceButton(s) {
  return h('button', { type: 'button', class: 'btn small', onclick: () => select(s.document_id) }, icon(icons.file), s.title || s.document_id);
}

function drawTest(preview, search) {
  const out = [];
  if (preview.ok) {
    const p = preview.data;
    const [cls, label] = DECISIONS[p.decision] || ['', p.decision];
    const pct = Math.round((p.confidence || 0) * 100);
    out.push(h('div', { class: 'decision', id: 'test-decision' },
      h('span', { class: `badge ${cls}` }, label),
      h('span', { class: 'small' }, 'Confidence ', h('span', { class: 'meter', 'aria-hidden': 'true' }, meterFill(pct)), ` ${pct}%`),
      p.intent?.name ? h('span', { class: 'small' }, 'Intent ', h('strong', {}, p.intent.name), ` (${Math.round((p.intent.confidence || 0) * 100)}%)`) : null,
      p.mode ? h('span', { class: 'badge' }, p.mode === 'llm' ? 'LLM' : 'Local') : null));
    if (p.reason) out.push(h('p', { class: 'small muted' }, 'Reason: ', h('span', { class: 'mono' }, p.reason)));
    if (p.reply) out.push(h('div', { class: 'reply' }, p.reply));
    if (p.last_answer && p.last_answer !== p.reply) out.push(h('div', {}, h('p', { class: 'label' }, 'What the bot would have answered'), h('div', { class: 'reply' }, p.last_answer)));
    if (p.sources?.length) out.push(h('div', {}, h('p', { class: 'label' }, 'Sources'), h('div', { class: 'btn-row' }, p.sources.map(sourceButton))));
  } else {
    out.push(unavailable('the bot preview', preview));
  }
  if (search.ok) {
    const hits = search.data.hits || [];
    out.push(h('div', {}, h('p', { class: 'label' }, `What search finds (${hits.length})`),
      hits.length ? h('div', { class: 'hits', id: 'test-hits' }, hits.map((x) => h('div', { class: 'hit' },
        h('div', { class: 'hit-head' }, h('button', { type: 'button', onclick: () => select(x.document_id) }, x.title),
          h('span', { class: 'badge' }, `score ${Number(x.score).toFixed(2)}`)),
        h('div', { class: 'text' }, x.text))))
        : h('p', { class: 'muted small' }, 'Nothing in the knowledge base matches this question.')));
  }
  el.testResult.replaceChildren(...out);
}

function meterFill(pct) {
  const s = h('span');
  s.style.width = `${Math.max(0, Math.min(100, pct))}%`;
  return s;
}

// ---- unanswered questions ---------------------------------------------

async function loadUnanswered() {
  st.unanswered = await api('GET', '/api/v1/reports/unanswered');
  const n = st.unanswered.ok ? (st.unanswered.data.questions || []).length : 0;
  el.unansweredCount.hidden = !n;
  el.unansweredCount.textContent = String(n);
  if (st.tab === 'unanswered') drawUnanswered();
}

function csvField(s) {
  return `"${String(s).replace(/"/g, '""')}"`;
}

function drawUnanswered() {
  const panel = el.panels.unanswered;
  const r = st.unanswered;
  if (!r) { panel.replaceChildren(h('p', { class: 'empty' }, 'Loading…')); return; }
  if (!r.ok) { panel.replaceChildren(unavailable('the unanswered-questions report', r)); return; }
  const qs = r.data.questions || [];
  const intro = h('p', { class: 'small muted' }, 'Questions the bot could not answer well, most frequent first. Add an answer and it becomes an FAQ entry the bot uses at once.');
  if (!qs.length) {
    panel.replaceChildren(intro, h('div', { class: 'empty' }, icon(icons.check), 'No unanswered questions. Nice.'));
    return;
  }
  panel.replaceChildren(intro, h('ul', { class: 'unanswered' }, qs.map((q) => {
    const li = h('li', {},
      h('div', { class: 'q' }, q.text),
      h('div', { class: 'meta' },
        h('span', {}, `asked ${q.count}×`),
        q.last_reason ? h('span', {}, q.last_reason.replace(/_/g, ' ')) : null,
        Number.isFinite(q.last_confidence) ? h('span', {}, `confidence ${Math.round(q.last_confidence * 100)}%`) : null,
        q.last_seen ? h('span', {}, `last ${fmtAgo(q.last_seen)}`) : null));
    const add = h('button', { type: 'button', class: 'btn small', onclick: () => { add.hidden = true; li.append(faqForm(q, () => { add.hidden = false; })); } }, 'Add as FAQ');
    li.append(h('div', { class: 'btn-row' }, add));
    return li;
  })));
}

function faqForm(q, onCancel) {
  const question = h('input', { class: 'input', value: q.text, 'aria-label': 'Question' });
  const answer = h('textarea', { class: 'input', rows: 3, placeholder: 'The answer customers should get', 'aria-label': 'Answer' });
  const save = h('button', { type: 'submit', class: 'btn primary small' }, 'Save FAQ');
  const form = h('form', { class: 'faq-form' }, question, answer,
    h('div', { class: 'btn-row' }, save, h('button', { type: 'button', class: 'btn small', onclick: () => { form.remove(); onCancel(); } }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const qt = question.value.trim();
    const at = answer.value.trim();
    if (!qt || !at) { toast('Write the answer first.', 'bad'); return; }
    save.disabled = true;
    // A one-row FAQ sheet: the CSV parser takes question and answer columns.
    const csv = `question,answer\r\n${csvField(qt)},${csvField(at)}\r\n`;
    const slug = qt.toLowerCase().replace(/[^a-z0-9\u4e00-\u9fff]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'faq';
    const form2 = new FormData();
    form2.append('file', new File([csv], `faq-${slug}.csv`, { type: 'text/csv' }));
    form2.append('title', `FAQ: ${qt}`.slice(0, 120));
    form2.append('tags', 'faq');
    const r = await upload('POST', '/api/v1/knowledge/documents', form2);
    save.disabled = false;
    if (!r.ok) { toast(`Could not add the FAQ: ${r.error?.message}`, 'bad'); return; }
    if (q.id) await api('POST', `/api/v1/reports/unanswered/${encodeURIComponent(q.id)}/resolve`);
    toast('Added to the knowledge base.', 'ok');
    loadDocs();
    loadUnanswered();
  });
  setTimeout(() => answer.focus(), 0);
  return form;
}
