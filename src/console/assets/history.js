// The log made visible: "why", the timeline of events, the diff between two moments,
// and the chain's integrity. All of it is the audit and authorize API.
import { api, get, post, ApiError } from './api.js';
import { h, table, form, title, button, showError } from './pages.js';

// ---- Why: may this principal do this action on this resource, now or then? ----
async function why(main, ctx) {
  title(main, 'Why? Who may do what, and what decided');
  main.append(h('p', {}, ctx.asOf
    ? `Asked as of ${/^\d+$/.test(ctx.asOf) ? 'log position ' + ctx.asOf : ctx.asOf} (the time slider): the grants and memberships of that moment.`
    : 'Asked now. Move the time slider to ask about the past.'));
  const answer = h('div', { id: 'why-answer', 'aria-live': 'polite' });
  const kinds = ctx.session.admin ? ['user', 'token', 'access key'] : ['me', 'token'];
  main.append(form('Question', [
    { name: 'kind', label: 'Who', type: 'select', options: kinds },
    { name: 'who', label: 'User name, token or access key (id@org)', value: ctx.session.admin ? '' : ctx.session.username },
    { name: 'action', label: 'Action', type: 'select', options: ['read', 'annotate', 'write', 'delete', 'manage', 'distribute', 'managedXrayMeta'] },
    { name: 'resource', label: 'Resource (repository/path)', required: true, placeholder: 'libs-release/org/app/1.0/app.jar' },
  ], 'Ask', async (v) => {
    const query = { resource: v.resource, action: v.action };
    const headers = {};
    if (v.kind === 'token') headers.Authorization = `Bearer ${v.who.trim()}`;
    else if (v.kind !== 'me' && v.who) query.user = v.who.trim();
    let d;
    try {
      d = await api('GET', '/access/api/v1/authorize', { query, asOf: ctx.asOf, headers });
    } catch (e) {
      // A "no" is a 403 with the same body; a pasted token the API does not take (revoked,
      // expired, not a token) is a 401 about that token, not about this session (it was
      // taken for the session's end, and the page signed out); anything else is an error.
      if (e instanceof ApiError && e.status === 403 && e.data && 'allowed' in e.data) d = e.data;
      else if (e instanceof ApiError && e.status === 401 && v.kind === 'token') {
        answer.replaceChildren(h('p', { class: 'answer no' },
          h('strong', {}, 'No'), ' — the token is not accepted'),
        h('p', {}, 'Why: ', h('span', { id: 'why-via' }, e.message)));
        return;
      } else throw e;
    }
    answer.replaceChildren(h('p', { class: `answer ${d.allowed ? 'yes' : 'no'}` },
      h('strong', {}, d.allowed ? 'Yes' : 'No'), ` — ${d.subject} may${d.allowed ? '' : ' not'} ${d.action} ${d.resource}`),
    h('p', {}, 'Decided by: ', h('span', { id: 'why-via' }, d.via)));
  }));
  main.append(answer);
}

// ---- Timeline: the log's events, with the audit filters ----
async function timeline(main, ctx) {
  title(main, 'Timeline of events');
  const q = new URLSearchParams(ctx.arg || '');
  const filters = ['type', 'actor', 'entity', 'since', 'until', 'from', 'limit'];
  const query = {};
  for (const f of filters) if (q.get(f)) query[f] = q.get(f);
  if (!query.limit) query.limit = '50';
  // Unfiltered, the page opens at the newest events (it opened at position 1: recent
  // activity was many "Next events" away); a filter reads from the start, as the API.
  const unfiltered = !['type', 'actor', 'entity', 'since', 'until', 'from'].some((f) => query[f]);
  const end = ctx.asOf && /^\d+$/.test(ctx.asOf) ? Number(ctx.asOf) : ctx.session.position;
  if (unfiltered && end > 0 && !(ctx.asOf && !/^\d+$/.test(ctx.asOf))) {
    query.from = String(Math.max(1, end - Math.max(1, Number(query.limit) || 50) + 1));
  }
  // Within the slider's moment: nothing after it.
  if (ctx.asOf && /^\d+$/.test(ctx.asOf)) query.to = ctx.asOf;
  // A time on the slider bounds what the form asks; an earlier `until` typed in the
  // form stays (the slider's replaced it while the form still showed it).
  if (ctx.asOf && !/^\d+$/.test(ctx.asOf)) {
    const typed = Date.parse(query.until || '');
    if (!(typed <= Date.parse(ctx.asOf))) query.until = ctx.asOf;
  }
  // Asked first: a caller the API refuses sees only the refusal, not the filters. A
  // filter the API finds wrong is shown next to it, in the form, to be corrected.
  let r = null;
  let wrong = null;
  try {
    r = await get('/access/api/v1/audit/events', { query });
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 400)) throw e;
    wrong = e;
  }
  const filtersForm = form('Filters', [
    { name: 'type', label: 'Event types (comma-separated)', value: q.get('type') || '' },
    { name: 'actor', label: 'Actor', value: q.get('actor') || '' },
    { name: 'entity', label: 'Entity (user, group, token id, …)', value: q.get('entity') || '' },
    { name: 'since', label: 'Since (RFC 3339)', value: q.get('since') || '' },
    { name: 'until', label: 'Until (RFC 3339)', value: q.get('until') || '' },
    { name: 'from', label: 'From position', value: q.get('from') || '' },
    { name: 'limit', label: 'Per page', value: q.get('limit') || '50' },
  ], 'Show events', async (v) => {
    const p = new URLSearchParams();
    for (const f of filters) if (v[f]) p.set(f, v[f]);
    ctx.go('timeline', p.toString());
  }, { inline: true });
  main.append(filtersForm);
  if (wrong) {
    showError(filtersForm, filtersForm.querySelector('p.error'), wrong);
    return;
  }
  const about = (e) => {
    const b = e.body || {};
    return b.username || b.name || b.group || b.token_id || b.key || b.id || '';
  };
  // The page an event is about, seen just before and just after it (before the first
  // event is position 0, the empty state: "Before #1" showed the state after it).
  // Events with no page of their own (LDAP settings, password and lock policies,
  // anonymous access) open Users, the people they act on.
  const pageOf = (type) => {
    for (const [prefix, page] of [['User', 'users'], ['Group', 'groups'], ['Permission', 'permissions'],
      ['Repository', 'repositories'], ['Project', 'projects'], ['GlobalRole', 'projects'],
      ['AccessKey', 'access-keys'], ['Entitlement', 'access-keys'], ['Token', 'tokens'],
      ['DefaultTokenExpiry', 'tokens'], ['Subscription', 'webhooks'], ['Federation', 'federation'],
      ['ReplicaRemoved', 'federation'], ['SigningKey', 'keys'], ['TrustedKey', 'keys'],
      ['SignedUrlKey', 'keys'], ['ServicePaired', 'keys'], ['CheckpointSigned', 'integrity']]) {
      if (type.startsWith(prefix)) return page;
    }
    return 'users';
  };
  main.append(table(['Position', 'Time', 'Actor', 'Event', 'About', ''], r.events.map((e) => [
    String(e.position), e.time, e.actor, e.type, String(about(e)),
    h('span', { class: 'actions' },
      h('button', { type: 'button', onclick: () => ctx.go(pageOf(e.type), '', String(e.position - 1)) }, `Before #${e.position}`),
      h('button', { type: 'button', onclick: () => ctx.go(pageOf(e.type), '', String(e.position)) }, `After #${e.position}`)),
  ])));
  if (r.next) {
    const p = new URLSearchParams(q);
    p.set('from', String(r.next));
    main.append(h('p', {}, h('a', { href: `#/timeline/${encodeURIComponent(p.toString())}${ctx.asOf ? '?as_of=' + encodeURIComponent(ctx.asOf) : ''}` }, 'Next events')));
  }
}

// ---- Diff between two moments ----
async function diff(main, ctx) {
  title(main, 'What changed between two moments');
  const out = h('div', { 'aria-live': 'polite' });
  main.append(form('Moments', [
    { name: 'from', label: 'From (position or RFC 3339 time)', required: true, value: ctx.asOf || '' },
    { name: 'to', label: 'To (empty: now)' },
  ], 'Compare', async (v) => {
    // The last answer goes first: after a refused question it read as this one's.
    out.replaceChildren();
    const r = await get('/access/api/v1/audit/diff', { query: { from: v.from, to: v.to } });
    out.replaceChildren(h('p', {}, `From position ${r.from} to ${r.to}: ${r.changes.length} change(s).`),
      table(['Entity', 'Id', 'Change', 'Fields'], r.changes.map((c) => [c.entity, c.id, c.change, (c.fields || []).join ? (c.fields || []).join(', ') : JSON.stringify(c.fields)])));
  }, { inline: true }));
  main.append(out);
}

// ---- Integrity ----
async function integrity(main, ctx) {
  // The chain is checked as it is now, whatever moment the slider shows.
  title(main, ctx.readOnly ? 'Integrity of the log (now: not of the moment shown)' : 'Integrity of the log');
  const d = await get('/access/api/v1/system/state/digest');
  const head = await get('/access/api/v1/audit/events', { query: { from: d.seq, to: d.seq, limit: 1 } });
  const last = head.events[0] || {};
  const cps = await get('/access/api/v1/audit/checkpoints');
  const cp = cps.checkpoints[cps.checkpoints.length - 1];
  main.append(table(['', ''], [
    ['Head position', h('span', { id: 'head-position' }, String(d.seq))],
    ['Head hash', h('code', { id: 'head-hash' }, last.hash || '—')],
    ['State digest', h('code', {}, d.digest)],
    ['Last signed checkpoint', cp ? `position ${cp.position}, ${cp.time}, key ${cp.kid}, hash ${cp.head_hash}` : 'none yet'],
  ]));
  const result = h('p', { id: 'verify-result', role: 'status', 'aria-live': 'polite' });
  main.append(h('p', {}, button('Verify the whole chain now', async () => {
    result.textContent = 'Verifying…';
    const r = await get('/access/api/v1/audit/chain');
    result.className = r.status === 'intact' ? 'ok' : 'error';
    result.textContent = r.status === 'intact'
      ? `Intact: ${r.events} events verified to position ${r.verified_to}, head hash ${r.head_hash}.`
      : `BROKEN at position ${r.broken_at} (verified to ${r.verified_to}): ${r.reason}`;
  })), result);
  // A write: not offered in the past (the page is of now; signing is a change).
  if (!ctx.readOnly) main.append(h('p', {}, button('Sign a checkpoint now', async () => { await post('/access/api/v1/audit/checkpoints', undefined); ctx.refresh(); })));
}

export const HISTORY_PAGES = { why, timeline, diff, integrity };
