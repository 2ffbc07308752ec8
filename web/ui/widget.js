/*
 * Tandem chat widget. Put this on any page of your site:
 *
 *   <script src="https://support.example.com/widget.js" defer
 *           data-title="Support" data-color="#4f46e5" data-position="right"></script>
 *
 * It adds a launcher button that opens the chat in a panel. The chat itself
 * runs in an iframe on the Tandem server's origin (its own storage, its own
 * security policy, no style clashes with your page); add your site's origin
 * to TANDEM_ALLOWED_ORIGINS so the server lets it be framed.
 *
 * data- attributes (all optional):
 *   data-title, data-greeting   texts shown in the chat header and first bubble
 *   data-color                  accent color, e.g. "#0f766e"
 *   data-position               "right" (default) or "left"
 *   data-lang                   "en" or "zh" (default: the browser's language)
 *   data-open                   "true" to open on load
 *   data-external-id, data-name, data-email, data-user-hash
 *                               who the customer is; data-user-hash is the hex
 *                               HMAC-SHA256 of data-external-id with the site
 *                               secret, computed by your back end
 *
 * window.Tandem.open(), .close() and .toggle() control it from your code.
 */
(function () {
  'use strict';
  if (window.Tandem && window.Tandem.loaded) return;
  var script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  if (!script) return;
  var origin = new URL(script.src, location.href).origin;
  var ds = script.dataset;
  var right = ds.position !== 'left';
  var color = /^#[0-9a-f]{3,8}$/i.test(ds.color || '') ? ds.color : '#4f46e5';
  var zh = (ds.lang || navigator.language || 'en').toLowerCase().indexOf('zh') === 0;
  var label = { open: zh ? '打开在线客服' : 'Open chat', close: zh ? '关闭在线客服' : 'Close chat',
    frame: zh ? '在线客服' : 'Customer support chat' };
  var ACTIVE = 'tandem.widget.active';

  var css = [
    ':host{all:initial}',
    '.launcher{position:fixed;bottom:20px;' + (right ? 'right' : 'left') + ':20px;z-index:2147483646;width:60px;height:60px;border-radius:50%;border:0;' +
      'background:' + color + ';color:#fff;box-shadow:0 8px 24px rgba(16,24,40,.25),0 2px 6px rgba(16,24,40,.15);cursor:pointer;display:grid;place-items:center;' +
      'transition:transform .15s ease}',
    '.launcher:hover{transform:scale(1.06)}',
    '.launcher:focus-visible{outline:3px solid ' + color + ';outline-offset:3px}',
    '.launcher svg{width:28px;height:28px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}',
    '.badge{position:absolute;top:-2px;' + (right ? 'right' : 'left') + ':-2px;min-width:20px;height:20px;padding:0 5px;border-radius:10px;background:#dc2626;color:#fff;' +
      'font:600 12px/20px system-ui,sans-serif;text-align:center;box-sizing:border-box}',
    '.panel{position:fixed;bottom:92px;' + (right ? 'right' : 'left') + ':20px;z-index:2147483647;width:380px;height:620px;max-height:calc(100vh - 112px);' +
      'border-radius:16px;overflow:hidden;background:#fff;box-shadow:0 16px 48px rgba(16,24,40,.22),0 4px 12px rgba(16,24,40,.08);' +
      'opacity:0;transform:translateY(12px) scale(.98);transition:opacity .18s ease,transform .18s ease;pointer-events:none}',
    '.panel.open{opacity:1;transform:none;pointer-events:auto}',
    '.panel iframe{width:100%;height:100%;border:0;display:block}',
    '@media (max-width:480px){.panel{inset:0;width:100%;height:100%;max-height:none;border-radius:0}.panel.open~.launcher{display:none}}',
    '@media (prefers-reduced-motion:reduce){.panel,.launcher{transition:none}}'
  ].join('\n');

  var ns = 'http://www.w3.org/2000/svg';
  function svg(paths) {
    var s = document.createElementNS(ns, 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    paths.forEach(function (d) {
      var p = document.createElementNS(ns, 'path');
      p.setAttribute('d', d);
      s.appendChild(p);
    });
    return s;
  }
  var chatIcon = ['M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z'];
  var closeIcon = ['M18 6 6 18', 'M6 6l12 12'];

  var host = document.createElement('div');
  host.id = 'tandem-widget';
  var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
  // A constructed style sheet works under a host page's strict CSP; older
  // browsers get a <style> element.
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    var style = document.createElement('style');
    style.textContent = css;
    root.appendChild(style);
  }

  var panel = document.createElement('div');
  panel.className = 'panel';
  panel.id = 'tandem-panel';
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-label', label.frame);
  panel.hidden = true;

  var button = document.createElement('button');
  button.type = 'button';
  button.className = 'launcher';
  button.setAttribute('aria-label', label.open);
  button.setAttribute('aria-expanded', 'false');
  button.setAttribute('aria-controls', 'tandem-panel');
  button.appendChild(svg(chatIcon));
  var badge = document.createElement('span');
  badge.className = 'badge';
  badge.hidden = true;
  badge.setAttribute('aria-hidden', 'true');
  button.appendChild(badge);

  root.appendChild(panel);
  root.appendChild(button);

  var frame = null;
  var isOpen = false;

  function chatURL() {
    var q = new URLSearchParams({ embed: '1' });
    if (ds.lang) q.set('lang', ds.lang);
    if (ds.title) q.set('title', ds.title);
    if (ds.greeting) q.set('greeting', ds.greeting);
    if (ds.color) q.set('color', color);
    var who = {};
    if (ds.externalId) who.external_id = ds.externalId;
    if (ds.name) who.name = ds.name;
    if (ds.email) who.email = ds.email;
    if (ds.userHash) who.user_hash = ds.userHash;
    var frag = Object.keys(who).length ? '#' + encodeURIComponent(JSON.stringify(who)) : '';
    return origin + '/chat?' + q.toString() + frag;
  }

  function ensureFrame() {
    if (frame) return;
    frame = document.createElement('iframe');
    frame.title = label.frame;
    frame.src = chatURL();
    frame.setAttribute('allow', 'clipboard-write');
    frame.addEventListener('load', function () { if (isOpen) post('open'); });
    panel.appendChild(frame);
  }

  function post(type) {
    if (frame && frame.contentWindow) frame.contentWindow.postMessage({ tandem: type }, origin);
  }

  function setBadge(n) {
    badge.hidden = !n;
    badge.textContent = n > 9 ? '9+' : String(n || '');
  }

  function open() {
    ensureFrame();
    isOpen = true;
    panel.hidden = false;
    // Let the panel render before the transition starts.
    requestAnimationFrame(function () { panel.classList.add('open'); });
    button.setAttribute('aria-expanded', 'true');
    button.setAttribute('aria-label', label.close);
    button.replaceChild(svg(closeIcon), button.firstChild);
    setBadge(0);
    try { localStorage.setItem(ACTIVE, '1'); } catch (e) { /* storage blocked */ }
    post('open');
    if (frame) frame.focus();
  }

  function close() {
    isOpen = false;
    panel.classList.remove('open');
    setTimeout(function () { if (!isOpen) panel.hidden = true; }, 200);
    button.setAttribute('aria-expanded', 'false');
    button.setAttribute('aria-label', label.open);
    button.replaceChild(svg(chatIcon), button.firstChild);
    post('hidden');
    button.focus();
  }

  button.addEventListener('click', function () { isOpen ? close() : open(); });
  window.addEventListener('message', function (e) {
    if (e.origin !== origin || !frame || e.source !== frame.contentWindow || !e.data) return;
    if (e.data.tandem === 'ready' && isOpen) post('open');
    if (e.data.tandem === 'close') close();
    if (e.data.tandem === 'unread' && !isOpen) setBadge(e.data.count);
  });

  function mount() {
    document.body.appendChild(host);
    // A visitor who has chatted before gets the chat loaded (hidden) at once,
    // so replies that arrive while it is closed show on the badge.
    var active = false;
    try { active = localStorage.getItem(ACTIVE) === '1'; } catch (e) { /* storage blocked */ }
    if (ds.open === 'true') open();
    else if (active) ensureFrame();
  }
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);

  window.Tandem = { loaded: true, open: open, close: close, toggle: function () { isOpen ? close() : open(); } };
})();
