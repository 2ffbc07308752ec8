// staff.js: what the staff pages share: the JSON API client, sign-in, the
// app bar and notifications.
import { h, icon, icons } from './lib.js';

// csrf is the session's CSRF token, from the sign-in answer or
// /api/v1/auth/me. The server wants it in the X-CSRF-Token header of every
// request that changes something while the session cookie signs us in.
let csrf = '';

function unsafe(method) {
  return !['GET', 'HEAD', 'OPTIONS'].includes(String(method).toUpperCase());
}

// api calls the JSON API with the session cookie. It resolves to
// {ok, status, data, error}; it never throws for an HTTP error, so pages can
// say plainly when an endpoint is missing (404) or forbidden (403).
export async function api(method, path, body, opts = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (csrf && unsafe(method)) init.headers['X-CSRF-Token'] = csrf;
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, data: null, error: { code: 'network', message: 'The server cannot be reached. Check your connection.' } };
  }
  let data = null;
  const text = await r.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (r.ok && data && typeof data.csrf_token === 'string') csrf = data.csrf_token;
  const error = r.ok ? null : (data && data.error) || { code: String(r.status), message: r.statusText || `HTTP ${r.status}` };
  if (r.status === 401 && !opts.noAuthRedirect && onSignedOut) onSignedOut();
  return { ok: r.ok, status: r.status, data, error };
}

// upload sends a multipart form with XMLHttpRequest, for progress events.
export function upload(method, path, form, onProgress) {
  return new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open(method, path);
    x.withCredentials = true;
    x.setRequestHeader('Accept', 'application/json');
    if (csrf && unsafe(method)) x.setRequestHeader('X-CSRF-Token', csrf);
    x.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress?.(e.loaded / e.total); });
    x.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(x.responseText); } catch { data = null; }
      const ok = x.status >= 200 && x.status < 300;
      resolve({ ok, status: x.status, data, error: ok ? null : (data && data.error) || { message: `HTTP ${x.status}` } });
    });
    x.addEventListener('error', () => resolve({ ok: false, status: 0, data: null, error: { message: 'The upload failed: the server cannot be reached.' } }));
    x.send(form);
  });
}

// toast shows a short message in the polite live region.
export function toast(message, kind = '') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: `toast ${kind}` }, message);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'bad' ? 6000 : 3000);
}

// unavailable explains that this server does not offer a feature yet.
export function unavailable(what, res) {
  if (res && res.status === 403) {
    return h('div', { class: 'notice' }, icon(icons.alert), h('div', {}, `You do not have access to ${what}. ${res.error?.message || ''}`));
  }
  if (res && res.status && res.status !== 404) {
    return h('div', { class: 'notice bad' }, icon(icons.alert), h('div', {}, `${what} could not be loaded: ${res.error?.message || `HTTP ${res.status}`}`));
  }
  return h('div', { class: 'notice info' }, icon(icons.alert),
    h('div', {}, h('strong', {}, `${what[0].toUpperCase()}${what.slice(1)} is not available on this server yet.`),
      ' This part of Tandem is still being built; the page will use it as soon as the server offers it.'));
}

let onSignedOut = null;

const pages = [
  { path: '/console', label: 'Console', role: 'agent' },
  { path: '/knowledge', label: 'Knowledge', role: 'editor' },
  { path: '/admin', label: 'Admin', role: 'admin' },
];

export function hasRole(user, role) {
  const roles = user?.roles || [];
  return roles.includes('admin') || roles.includes(role);
}

function initials(name) {
  return (name || '?').split(/[\s@.]+/).filter(Boolean).slice(0, 2).map((p) => p[0].toUpperCase()).join('');
}

function appbar(user, current) {
  const bar = document.querySelector('.appbar');
  const nav = h('nav', { 'aria-label': 'Staff pages' }, pages
    .filter((p) => !user || hasRole(user, p.role))
    .map((p) => h('a', { href: p.path, 'aria-current': p.path === current ? 'page' : null }, p.label)));
  const right = user ? h('div', { class: 'who' },
    h('div', { class: 'presence-slot' }),
    h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(user.display_name || user.email)),
    h('div', {}, h('div', { class: 'name' }, user.display_name || user.email), h('div', { class: 'roles' }, (user.roles || []).join(', '))),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out')) : null;
  bar.replaceChildren(
    h('a', { class: 'brand', href: '/' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 26, height: 26 }), h('span', {}, 'Tandem')),
    nav, h('div', { class: 'spacer' }), right);
}

async function signOut() {
  await api('POST', '/api/v1/auth/logout', undefined, { noAuthRedirect: true });
  location.reload();
}

function signInForm(title, role, onDone) {
  const main = document.getElementById('app');
  const err = h('p', { class: 'error', role: 'alert', hidden: true });
  const email = h('input', { id: 'signin-email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'signin-password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Sign in');
  const form = h('form', { id: 'signin', class: 'card signin', novalidate: true },
    h('h1', {}, title),
    h('p', { class: 'sub' }, `Sign in with a Tandem account that has the ${role} role.`),
    err,
    h('div', { class: 'field' }, h('label', { for: 'signin-email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'signin-password' }, 'Password'), password),
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!email.value || !password.value) {
      err.textContent = 'Enter your email and password.';
      err.hidden = false;
      return;
    }
    submit.disabled = true;
    const r = await api('POST', '/api/v1/auth/login', { email: email.value.trim(), password: password.value }, { noAuthRedirect: true });
    submit.disabled = false;
    if (!r.ok) {
      err.textContent = r.status === 401 ? 'That email and password do not match an account.' : (r.error?.message || 'Sign-in failed.');
      err.hidden = false;
      password.select();
      return;
    }
    onDone(r.data.user);
  });
  main.replaceChildren(h('div', { class: 'signin-wrap' }, form));
  document.body.dataset.signedIn = 'false';
  email.focus();
}

// boot signs the user in if needed, then renders the page. render(user,
// main) gets the signed-in user and the main element.
export async function boot({ title, role, current, render }) {
  appbar(null, current);
  const start = (user) => {
    appbar(user, current);
    const main = document.getElementById('app');
    main.replaceChildren();
    if (!hasRole(user, role)) {
      main.append(h('div', { class: 'page' }, h('div', { class: 'notice' }, icon(icons.alert),
        h('div', {}, `This page needs the ${role} role; you are signed in as ${user.email} (${(user.roles || []).join(', ')}).`))));
    } else {
      render(user, main);
    }
    document.body.dataset.signedIn = 'true';
  };
  const expired = () => {
    onSignedOut = null;
    toast('Your session has ended. Please sign in again.', 'bad');
    appbar(null, current);
    signInForm(title, role, () => location.reload());
  };
  onSignedOut = expired;
  const me = await api('GET', '/api/v1/auth/me', undefined, { noAuthRedirect: true });
  if (me.ok && me.data?.user) start(me.data.user);
  else signInForm(title, role, start);
  document.body.dataset.ready = 'true';
}

// Re-export the helpers pages need with the API.
export { h, icon, icons };
