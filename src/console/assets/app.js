// The console: sign-in, the page router, the time slider. Every page is drawn by
// pages.js / history.js from answers of the REST API; nothing here decides who may see
// what — the API does, and its 401/403 answers are shown as they are.
import { api, setCsrf, ApiError } from './api.js';
import { PAGES, expiredPassword } from './pages.js';
import { HISTORY_PAGES } from './history.js';

const ALL = { ...PAGES, ...HISTORY_PAGES };
// In the navigation: [route, label, admin only].
const NAV = [
  ['users', 'Users', true], ['me', 'My account', false], ['groups', 'Groups', true],
  ['permissions', 'Permissions', true], ['repositories', 'Repositories', true],
  ['projects', 'Projects', false], ['access-keys', 'Access keys', true],
  ['tokens', 'Tokens', false], ['webhooks', 'Webhooks', true], ['federation', 'Federation', true],
  ['keys', 'Signing keys', false], ['why', 'Why?', false], ['timeline', 'Timeline', true],
  ['diff', 'Diff', true], ['integrity', 'Integrity', true],
];

const $ = (id) => document.getElementById(id);
let session = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const params = new URLSearchParams(query || '');
  // A hand-typed hash may not decode (`%E0%A4`): taken as it is, the page then says
  // there is no such page (decodeURIComponent would throw and leave the last page up).
  const decode = (x) => { try { return decodeURIComponent(x); } catch { return x; } };
  const [page, ...rest] = path.split('/').map(decode);
  let asOf = params.get('as_of') || null;
  // A moment still to come is the present (the API answers it with the head): shown as
  // the past, read-only, it was labelled as what it is not.
  if (asOf && !/^\d+$/.test(asOf) && Date.parse(asOf) > Date.now()) asOf = null;
  return { page: page || '', arg: rest.join('/'), asOf };
}

function hashFor(page, arg, asOf) {
  let h = '#/' + page + (arg ? '/' + encodeURIComponent(arg) : '');
  if (asOf) h += '?as_of=' + encodeURIComponent(asOf);
  return h;
}

function go(page, arg, asOf) {
  const target = hashFor(page, arg, asOf === undefined ? parseHash().asOf : asOf);
  if (location.hash === target) render(); else location.hash = target;
}

function showSignIn(message) {
  session = null;
  setCsrf(null);
  // Nothing of the last user stays in the page: its pages (a token shown once, a
  // password typed), its navigation, the past it was looking at, its address.
  renderSeq++;
  $('main').replaceChildren();
  $('nav').replaceChildren();
  $('asof-banner').textContent = '';
  $('who').textContent = '';
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  $('console').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  $('signin-username').focus();
}

async function loadSession() {
  try {
    session = await api('GET', '/ui/session');
    setCsrf(session.csrf);
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return false;
    throw e;
  }
}

function drawNav(current) {
  const nav = $('nav');
  nav.replaceChildren();
  for (const [route, label, adminOnly] of NAV) {
    if (adminOnly && !session.admin) continue;
    if (route === 'me' && session.admin) continue;
    const a = document.createElement('a');
    a.href = hashFor(route, '', parseHash().asOf);
    a.textContent = label;
    if (route === current) a.setAttribute('aria-current', 'page');
    nav.append(a);
  }
}

function drawSlider(asOf) {
  const head = session.position;
  const range = $('asof-range');
  range.max = String(head);
  const pos = asOf && /^\d+$/.test(asOf) ? Number(asOf) : head;
  range.value = String(Math.min(pos, head));
  $('asof-position').value = asOf && /^\d+$/.test(asOf) ? asOf : (asOf ? '' : String(head));
  $('asof-position').max = String(head);
  // The controls say one moment: a position clears the time field (a stale time won the
  // next "Show this moment").
  if (asOf && !/^\d+$/.test(asOf)) $('asof-time').value = asOf.replace(/Z$/, '').slice(0, 19);
  else $('asof-time').value = '';
  document.body.classList.toggle('is-past', !!asOf);
  $('asof-banner').textContent = asOf
    ? `The past, read-only: the state as of ${/^\d+$/.test(asOf) ? 'log position ' + asOf : asOf} (the head is at ${head}). Changes are made only in the present.`
    : `Now: log position ${head}.`;
}

let renderSeq = 0;

async function render() {
  if (!session) return;
  // Only the newest render may show its page (a sign-in and a hash change can overlap).
  const mine = ++renderSeq;
  // The head moves: ask again on every page change (also notices an ended session).
  let live;
  try {
    live = await loadSession();
  } catch (e) {
    // The server is unreachable or answered otherwise: say so instead of the old page.
    if (mine !== renderSeq) return;
    const p = document.createElement('p');
    p.className = 'error';
    p.setAttribute('role', 'alert');
    p.textContent = `The server could not be reached (${e.message || e}); try again.`;
    $('main').replaceChildren(p);
    return;
  }
  // A render overtaken meanwhile (a sign-out, a newer page) says nothing more.
  if (mine !== renderSeq) return;
  if (!live) { showSignIn('Your session has ended; sign in again.'); return; }
  let { page, arg, asOf } = parseHash();
  // A position at or after the head is the present, as a time still to come is (it was
  // shown as the past, read-only — and past the head, as an error under that title).
  if (asOf && /^\d+$/.test(asOf) && Number(asOf) >= session.position) {
    asOf = null;
    history.replaceState(null, '', hashFor(page || '', arg, null));
  }
  const name = page || (session.admin ? 'users' : 'me');
  $('signin').hidden = true;
  $('console').hidden = false;
  $('who').textContent = session.username + (session.admin ? ' (admin)' : '');
  // An expired password opens one page only: changing it (the API allows nothing else).
  const expired = !!session.password_expired;
  $('nav').hidden = expired;
  $('time').hidden = expired;
  if (expired) {
    const main = document.createElement('div');
    await expiredPassword(main, { session, signIn: (m) => showSignIn(m) });
    if (mine === renderSeq) $('main').replaceChildren(main);
    return;
  }
  drawNav(name);
  drawSlider(asOf);
  if (asOf && /^\d+$/.test(asOf) && session.admin) {
    // Say when that position was written (the audit API; admins only).
    api('GET', '/access/api/v1/audit/events', { query: { from: asOf, to: asOf, limit: 1 } })
      .then((r) => { const e = r.events[0]; if (e && mine === renderSeq) $('asof-banner').append(` Position ${asOf} was written at ${e.time} (${e.type} by ${e.actor}).`); })
      .catch(() => {});
  }
  const main = document.createElement('div');
  const draw = ALL[name];
  const ctx = {
    session, arg, asOf, readOnly: !!asOf,
    go: (p, a, when) => go(p, a, when),
    moment: (when) => go(name, arg, when || null),
    refresh: () => render(),
  };
  const show = () => { if (mine === renderSeq) $('main').replaceChildren(main); };
  if (!draw) { main.textContent = `No page “${name}”.`; show(); return; }
  try {
    await draw(main, ctx);
    show();
  } catch (e) {
    const p = document.createElement('p');
    p.className = 'error';
    p.setAttribute('role', 'alert');
    p.textContent = e instanceof ApiError ? `${e.status === 403 ? 'Not allowed' : 'Error'}: ${e.message}` : String(e);
    main.append(p);
    show();
    if (e instanceof ApiError && e.status === 401 && mine === renderSeq) showSignIn('Your session has ended; sign in again.');
  }
}

function applyMoment() {
  const pos = $('asof-position').value.trim();
  const time = $('asof-time').value;
  const { page, arg } = parseHash();
  let asOf = null;
  if (time) {
    // datetime-local has no zone: the console speaks UTC, like the API.
    asOf = new Date(time + (time.length === 16 ? ':00' : '') + 'Z').toISOString();
    // A moment still to come: the present (see parseHash).
    if (Date.parse(asOf) > Date.now()) asOf = null;
  } else if (pos && Number(pos) < session.position) {
    asOf = pos;
  }
  go(page || (session.admin ? 'users' : 'me'), arg, asOf);
}

function wire() {
  window.addEventListener('gatehouse-session-ended', (ev) => showSignIn(ev.detail));
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    for (const s of f.querySelectorAll('.field-error')) s.textContent = '';
    $('signin-error').textContent = '';
    try {
      session = await api('POST', '/ui/sign-in', { form: { username: f.username.value, password: f.password.value } });
      setCsrf(session.csrf);
      f.password.value = '';
      if (!location.hash) location.hash = '#/';
      await render();
      $('main').focus();
    } catch (e) {
      const field = e instanceof ApiError && f.querySelector(`[data-error-for="${e.field}"]`);
      if (field && e.status === 400) field.textContent = e.message;
      else $('signin-error').textContent = `Sign-in failed: ${e.message}`;
    }
  });
  $('sign-out').addEventListener('click', async () => {
    try { await api('POST', '/ui/sign-out'); } catch (e) { /* ended already */ }
    showSignIn('You have signed out.');
  });
  $('asof-range').addEventListener('input', () => {
    $('asof-position').value = $('asof-range').value;
    $('asof-time').value = '';
  });
  $('asof-range').addEventListener('change', applyMoment);
  $('asof-position').addEventListener('keydown', (e) => { if (e.key === 'Enter') applyMoment(); });
  $('asof-position').addEventListener('input', () => { $('asof-time').value = ''; });
  $('asof-go').addEventListener('click', applyMoment);
  $('asof-now').addEventListener('click', () => {
    $('asof-time').value = '';
    const { page, arg } = parseHash();
    go(page || (session.admin ? 'users' : 'me'), arg, null);
  });
  window.addEventListener('hashchange', render);
}

async function start() {
  wire();
  let live = false;
  try {
    live = await loadSession();
  } catch (e) {
    showSignIn(`The server could not be reached (${e.message || e}); reload to try again.`);
    return;
  }
  if (live) await render();
  else showSignIn('');
}

start();
