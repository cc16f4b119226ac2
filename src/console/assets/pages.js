// The pages of the directory and its resources, drawn from the REST API's answers. In
// the past (`ctx.readOnly`) they show the state of that moment and offer no changes.
import { get, post, put, patch, del, enc, ApiError } from './api.js';

// ---- DOM helpers (text only: nothing the API says is ever parsed as HTML) ----
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function table(columns, rows, caption) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length
        ? rows.map((r) => h('tr', {}, r.map((cell) => h('td', {}, cell))))
        : h('tr', {}, h('td', { colspan: String(columns.length) }, 'None.')))));
}

/**
 * A list the API answers a page at a time (`limit`, `cursor`): the first page as a
 * table, and "Show more" while the API says there is more (`cursor`). The lists stopped
 * at the first page (1,000 entries) and said nothing of the rest.
 * path: the list's URL; key: the array in the answer; columns, row: the table.
 */
async function pagedTable(ctx, path, key, columns, row) {
  const wrap = h('div', {});
  let rendered = null;
  const more = async (cursor) => {
    const query = { limit: '500' };
    if (cursor) query.cursor = cursor;
    const r = await get(path, { asOf: ctx.asOf, query });
    const items = r[key] || [];
    if (!rendered) {
      rendered = table(columns, items.map(row));
      wrap.append(rendered);
    } else if (items.length) {
      rendered.querySelector('tbody').append(...items.map(row).map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))));
    }
    wrap.querySelector('p.more')?.remove();
    if (r.cursor) {
      const shown = rendered.querySelectorAll('tbody tr').length;
      wrap.append(h('p', { class: 'more' }, `${shown} shown. `,
        h('button', { type: 'button', onclick: async (e) => {
          e.target.disabled = true;
          // An error is said beside the button, which can be tried again (it stayed
          // disabled and said nothing); a 401 ends the session, as forms do.
          try { await more(r.cursor); } catch (err) {
            if (err instanceof ApiError && err.status === 401) { ended('Your session has ended; sign in again.'); return; }
            e.target.disabled = false;
            e.target.after(h('span', { class: 'error', role: 'alert' }, ` ${err.message || err}`));
          }
        } }, 'Show more')));
    }
  };
  await more(null);
  return wrap;
}

export const link = (ctx, page, arg, text) => h('a', { href: `#/${page}/${enc(arg)}${ctx.asOf ? '?as_of=' + enc(ctx.asOf) : ''}` }, text);
export const list = (s) => String(s || '').split(',').map((x) => x.trim()).filter(Boolean);
export const pretty = (v) => h('pre', {}, JSON.stringify(v, null, 2));
export const title = (main, text, ctx) => main.append(h('h1', {}, text, ctx && ctx.readOnly ? ' (past, read-only)' : ''));

let formSeq = 0;
/**
 * A form whose fields are labelled inputs; on submit, `action(values)` runs, and an API
 * error is shown next to the field it names (or above the button).
 * fields: [{name, label, type?, required?, options?, value?, placeholder?}]
 */
export function form(legend, fields, submitText, action, { inline = false } = {}) {
  const id = `f${++formSeq}`;
  const status = h('p', { class: 'error', role: 'alert' });
  const done = h('p', { class: 'ok', role: 'status' });
  const inputs = fields.map((f) => {
    const inputId = `${id}-${f.name}`;
    let input;
    if (f.type === 'select') {
      input = h('select', { id: inputId, name: f.name }, f.options.map((o) => h('option', { value: o, selected: o === f.value }, o)));
    } else if (f.type === 'textarea') {
      input = h('textarea', { id: inputId, name: f.name, rows: '6', placeholder: f.placeholder }, f.value || '');
    } else if (f.type === 'checkbox') {
      input = h('input', { id: inputId, name: f.name, type: 'checkbox', checked: !!f.value });
    } else {
      input = h('input', { id: inputId, name: f.name, type: f.type || 'text', value: f.value ?? '', placeholder: f.placeholder, required: f.required, autocomplete: f.type === 'password' ? 'new-password' : 'off' });
    }
    const err = h('span', { class: 'field-error', 'data-error-for': f.name, id: `${inputId}-error` });
    input.setAttribute('aria-describedby', `${inputId}-error`);
    return h('p', { class: f.type === 'checkbox' ? 'field check' : 'field' },
      f.type === 'checkbox' ? [input, h('label', { for: inputId }, f.label)] : [h('label', { for: inputId }, f.label), input], err);
  });
  const el = h('form', { class: inline ? 'inline' : '', 'aria-label': legend },
    h('fieldset', {}, h('legend', {}, legend), inputs, status, h('button', { type: 'submit' }, submitText), done));
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.textContent = ''; done.textContent = '';
    for (const s of el.querySelectorAll('.field-error')) s.textContent = '';
    const values = {};
    for (const f of fields) {
      const input = el.elements[f.name];
      values[f.name] = f.type === 'checkbox' ? input.checked : input.value;
    }
    try {
      const msg = await action(values);
      if (typeof msg === 'string') done.textContent = msg;
    } catch (e) {
      // A session that ended meanwhile: the sign-in page says so (it stayed on the form,
      // with "authentication is required" beside the button).
      if (e instanceof ApiError && e.status === 401) { ended('Your session has ended; sign in again.'); return; }
      showError(el, status, e);
    }
  });
  return el;
}

/** The console session has ended: app.js shows the sign-in page with `message`. */
export function ended(message) {
  window.dispatchEvent(new CustomEvent('gatehouse-session-ended', { detail: message }));
}

/** Put an API error next to the field it names, else in `status`. */
export function showError(root, status, e) {
  if (e instanceof ApiError && e.field) {
    const name = e.field.replace(/[[.].*$/, '');
    const slot = root.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) { slot.textContent = e.message; const i = root.querySelector(`[name="${CSS.escape(name)}"]`); if (i) i.focus(); return; }
  }
  status.textContent = e.message || String(e);
}

/** A button that runs `action` and reports its error beside itself. */
export function button(text, action, { danger = false, confirmText } = {}) {
  const err = h('span', { class: 'error', role: 'alert' });
  const b = h('button', { type: 'button', class: danger ? 'danger' : '' }, text);
  b.addEventListener('click', async () => {
    err.textContent = '';
    if (confirmText && !window.confirm(confirmText)) return;
    try { await action(); } catch (e) {
      // A 401 is the session's end, as for forms (it was said beside the button while
      // the page stayed signed in).
      if (e instanceof ApiError && e.status === 401) { ended('Your session has ended; sign in again.'); return; }
      err.textContent = e.message;
    }
  });
  return h('span', { class: 'actions' }, b, err);
}

const pastNote = (ctx) => ctx.readOnly ? h('p', { class: 'notice' }, 'This is the past: nothing can be changed here. Use “Back to now” to make changes.') : null;

// ---- Users ----
async function users(main, ctx) {
  if (ctx.arg) return user(main, ctx, ctx.arg);
  title(main, 'Users', ctx);
  main.append(await pagedTable(ctx, '/access/api/v2/users', 'users', ['User', 'Status', 'Realm'],
    (u) => [link(ctx, 'users', u.username, u.username), u.status, u.realm]));
  main.append(pastNote(ctx) || form('Create a user', [
    { name: 'username', label: 'User name', required: true },
    { name: 'password', label: 'Password', type: 'password' },
    { name: 'email', label: 'E-mail' },
    { name: 'groups', label: 'Groups (comma-separated)' },
    { name: 'admin', label: 'Admin', type: 'checkbox' },
  ], 'Create user', async (v) => {
    const body = { username: v.username, groups: list(v.groups), admin: v.admin };
    if (v.password) body.password = v.password;
    if (v.email) body.email = v.email;
    await post('/access/api/v2/users', body);
    ctx.go('users', v.username);
  }));
}

async function user(main, ctx, name) {
  const u = await get(`/access/api/v2/users/${enc(name)}`, { asOf: ctx.asOf });
  title(main, `User ${u.username}`, ctx);
  main.append(table(['Field', 'Value'], [
    ['Status', u.status], ['Admin', u.admin ? 'yes' : (u.effective_admin ? 'yes, through a group' : 'no')], ['E-mail', u.email || '—'],
    ['Groups', u.groups.length ? h('span', {}, u.groups.map((g, i) => [i ? ', ' : '', ctx.session.admin ? link(ctx, 'groups', g, g) : g])) : '—'],
    ['Realm', u.realm], ['Password expired', u.password_expired ? 'yes' : 'no'],
  ]));
  // What the user may do, and through which grant (the decision's own account).
  const eff = await get('/access/api/v1/authorize/effective', { query: self0(ctx, u) ? {} : { user: u.username }, asOf: ctx.asOf }).catch((e) => ({ error: e.message }));
  main.append(h('h2', {}, 'Effective permissions'));
  if (eff.error) main.append(h('p', { class: 'error' }, eff.error));
  else {
    main.append(table(['Permission target', 'Repositories', 'Patterns', 'Actions', 'Via'], (eff.permissions || []).flatMap((p) => (p.grants || []).map((g) => [
      p.permission_target, (p.repositories || []).join(', '), (p.include_patterns || []).join(', '), g.actions.join(', '), g.via]))));
    if ((eff.project_roles || []).length) main.append(pretty(eff.project_roles));
  }
  if (ctx.readOnly) { main.append(pastNote(ctx)); return; }
  const self = u.username === ctx.session.username;
  if (ctx.session.admin) {
    main.append(form('Groups', [
      { name: 'add', label: 'Add to groups (comma-separated)' },
      { name: 'remove', label: 'Remove from groups (comma-separated)' },
    ], 'Change groups', async (v) => {
      await patch(`/access/api/v2/users/${enc(u.username)}/groups`, { add: list(v.add), remove: list(v.remove) });
      ctx.refresh();
    }));
    // The status as it is (a locked user shows `locked`); only what was changed is
    // sent, so saving an e-mail no longer lifts a lock.
    const statuses = u.status === 'enabled' || u.status === 'disabled' ? ['enabled', 'disabled'] : [u.status, 'enabled', 'disabled'];
    main.append(form('Profile', [
      { name: 'email', label: 'E-mail', value: u.email || '' },
      { name: 'status', label: 'Status', type: 'select', options: statuses, value: u.status },
      { name: 'admin', label: 'Admin', type: 'checkbox', value: u.admin },
    ], 'Save', async (v) => {
      const changed = {};
      if (v.email !== (u.email || '')) changed.email = v.email;
      if (v.status !== u.status) changed.status = v.status;
      if (v.admin !== u.admin) changed.admin = v.admin;
      if (Object.keys(changed).length) await patch(`/access/api/v2/users/${enc(u.username)}`, changed);
      ctx.refresh();
    }));
    if (u.status === 'locked') main.append(button('Unlock', async () => { await post(`/access/api/v2/users/${enc(u.username)}/unlock`, {}); ctx.refresh(); }));
  }
  if (self || ctx.session.admin) {
    main.append(form(self ? 'Change my password' : 'Set the password', [
      { name: 'password', label: 'New password', type: 'password', required: true },
    ], 'Change password', async (v) => {
      await put(`/access/api/v2/users/${enc(u.username)}/password`, { password: v.password });
      if (self) { ended('Your password is changed and your console session ended with it. Sign in with the new one.'); return undefined; }
      return 'Password changed.';
    }));
  }
  if (ctx.session.admin && !self) {
    main.append(h('p', {}, button(`Delete user ${u.username}`, async () => {
      await del(`/access/api/v2/users/${enc(u.username)}`);
      ctx.go('users', '');
    }, { danger: true, confirmText: `Delete user ${u.username}?` })));
  }
}

const self0 = (ctx, u) => u.username === ctx.session.username;

// ---- An expired password ----
// The API refuses everything to a user whose password has expired except changing it
// (403 naming the way out), so the console offers that, and only that.
export async function expiredPassword(main, ctx) {
  title(main, 'Your password has expired');
  main.append(h('p', {}, 'Choose a new password to go on. Nothing else opens until it is changed; then you sign in again with the new one.'));
  main.append(form('Change my expired password', [
    { name: 'password', label: 'New password', type: 'password', required: true },
    { name: 'confirm', label: 'New password again', type: 'password', required: true },
  ], 'Change password', async (v) => {
    if (v.password !== v.confirm) throw new ApiError(400, { errors: [{ message: 'invalid `confirm`: the two passwords differ' }] });
    await put(`/access/api/v2/users/${enc(ctx.session.username)}/password`, { password: v.password });
    ctx.signIn('Your password is changed. Sign in with the new one.');
  }));
}

async function me(main, ctx) { return user(main, ctx, ctx.session.username); }

// ---- Groups ----
async function groups(main, ctx) {
  if (ctx.arg) return group(main, ctx, ctx.arg);
  title(main, 'Groups', ctx);
  main.append(await pagedTable(ctx, '/access/api/v2/groups', 'groups', ['Group'],
    (g) => [link(ctx, 'groups', g.group_name, g.group_name)]));
  main.append(pastNote(ctx) || form('Create a group', [
    { name: 'name', label: 'Name', required: true },
    { name: 'description', label: 'Description' },
    { name: 'members', label: 'Members (comma-separated)' },
  ], 'Create group', async (v) => {
    await post('/access/api/v2/groups', { name: v.name, description: v.description || undefined, members: list(v.members) });
    ctx.go('groups', v.name);
  }));
}

async function group(main, ctx, name) {
  const g = await get(`/access/api/v2/groups/${enc(name)}`, { asOf: ctx.asOf });
  title(main, `Group ${g.name}`, ctx);
  main.append(table(['Field', 'Value'], [
    ['Description', g.description || '—'], ['Admin privileges', g.admin_privileges ? 'yes' : 'no'],
    ['Auto-join', g.auto_join ? 'yes' : 'no'], ['Realm', g.realm],
  ]));
  main.append(h('h2', {}, 'Members'));
  main.append(table(['User'], (g.members || []).map((m) => [link(ctx, 'users', m, m)])));
  if (ctx.readOnly) { main.append(pastNote(ctx)); return; }
  main.append(form('Members', [
    { name: 'add', label: 'Add users (comma-separated)' },
    { name: 'remove', label: 'Remove users (comma-separated)' },
  ], 'Change members', async (v) => {
    await patch(`/access/api/v2/groups/${enc(g.name)}/members`, { add: list(v.add), remove: list(v.remove) });
    ctx.refresh();
  }));
  main.append(form('Description', [{ name: 'description', label: 'Description', value: g.description || '' }], 'Save', async (v) => {
    await patch(`/access/api/v2/groups/${enc(g.name)}`, { description: v.description });
    ctx.refresh();
  }));
  main.append(h('p', {}, button(`Delete group ${g.name}`, async () => {
    await del(`/access/api/v2/groups/${enc(g.name)}`);
    ctx.go('groups', '');
  }, { danger: true, confirmText: `Delete group ${g.name}?` })));
}

// ---- Permission targets ----
// The API's own list (`SCAN` was shown, and refused by it).
const ACTIONS = ['READ', 'ANNOTATE', 'WRITE', 'DELETE', 'MANAGE', 'DISTRIBUTE', 'MANAGED_XRAY_METADATA'];
function grants(actions) {
  const rows = [];
  for (const kind of ['users', 'groups']) {
    for (const [who, acts] of Object.entries((actions || {})[kind] || {})) rows.push([kind === 'users' ? 'user' : 'group', who, acts.join(', ')]);
  }
  return rows;
}

async function permissions(main, ctx) {
  if (ctx.arg) return permission(main, ctx, ctx.arg);
  title(main, 'Permission targets', ctx);
  main.append(await pagedTable(ctx, '/access/api/v2/permissions', 'permissions', ['Permission target'],
    (p) => [link(ctx, 'permissions', p.name, p.name)]));
  main.append(pastNote(ctx) || form('Create a permission target', [
    { name: 'name', label: 'Name', required: true },
    { name: 'repositories', label: 'Repositories (comma-separated; ANY, ANY LOCAL, ANY REMOTE)', required: true },
    { name: 'include', label: 'Include patterns', value: '**' },
    { name: 'exclude', label: 'Exclude patterns' },
    { name: 'group', label: 'Group' },
    { name: 'group_actions', label: 'Group actions', value: 'READ' },
    { name: 'user', label: 'User' },
    { name: 'user_actions', label: 'User actions', value: 'READ' },
  ], 'Create permission target', async (v) => {
    const targets = {};
    for (const repo of list(v.repositories)) targets[repo] = { include_patterns: list(v.include), exclude_patterns: list(v.exclude) };
    const actions = { users: {}, groups: {} };
    if (v.group) actions.groups[v.group] = list(v.group_actions);
    if (v.user) actions.users[v.user] = list(v.user_actions);
    await post('/access/api/v2/permissions', { name: v.name, resources: { artifact: { actions, targets } } });
    ctx.go('permissions', v.name);
  }));
  main.append(h('p', {}, `Actions: ${ACTIONS.join(', ')}.`));
}

async function permission(main, ctx, name) {
  const p = await get(`/access/api/v2/permissions/${enc(name)}`, { asOf: ctx.asOf });
  title(main, `Permission target ${p.name}`, ctx);
  for (const [kind, res] of Object.entries(p.resources || {})) {
    main.append(h('h2', {}, `${kind} resources`));
    main.append(table(['Target', 'Include', 'Exclude'], Object.entries(res.targets || {}).map(([t, v]) => [t, (v.include_patterns || []).join(', '), (v.exclude_patterns || []).join(', ')])));
    main.append(table(['Kind', 'Who', 'Actions'], grants(res.actions)));
  }
  if (ctx.readOnly) { main.append(pastNote(ctx)); return; }
  const RESOURCES = ['artifact', 'build', 'release_bundle'];
  const section = (r) => JSON.parse(JSON.stringify((p.resources || {})[r] || { actions: {}, targets: {} }));
  main.append(form(`Grant on ${p.name}`, [
    { name: 'resource', label: 'Resource', type: 'select', options: RESOURCES },
    { name: 'kind', label: 'To', type: 'select', options: ['group', 'user'] },
    { name: 'who', label: 'Name', required: true },
    { name: 'actions', label: 'Actions (comma-separated; empty removes the grant)', value: 'READ' },
  ], 'Set grant', async (v) => {
    const res = section(v.resource);
    res.actions = res.actions || {};
    const key = v.kind === 'user' ? 'users' : 'groups';
    res.actions[key] = res.actions[key] || {};
    if (list(v.actions).length) res.actions[key][v.who] = list(v.actions); else delete res.actions[key][v.who];
    await put(`/access/api/v2/permissions/${enc(p.name)}/${v.resource}`, res);
    ctx.refresh();
  }));
  main.append(form(`Targets of ${p.name}`, [
    { name: 'resource', label: 'Resource', type: 'select', options: RESOURCES },
    { name: 'repositories', label: 'Repositories (comma-separated; ANY, ANY LOCAL, ANY REMOTE; for build: artifactory-build-info)', required: true },
    { name: 'include', label: 'Include patterns', value: '**' },
    { name: 'exclude', label: 'Exclude patterns' },
  ], 'Set targets', async (v) => {
    const res = section(v.resource);
    res.targets = {};
    for (const repo of list(v.repositories)) res.targets[repo] = { include_patterns: list(v.include), exclude_patterns: list(v.exclude) };
    await put(`/access/api/v2/permissions/${enc(p.name)}/${v.resource}`, res);
    ctx.refresh();
  }));
  main.append(h('p', {}, button(`Delete permission target ${p.name}`, async () => {
    await del(`/access/api/v2/permissions/${enc(p.name)}`);
    ctx.go('permissions', '');
  }, { danger: true, confirmText: `Delete ${p.name}?` })));
}

// ---- Repositories ----
async function repositories(main, ctx) {
  title(main, 'Repositories', ctx);
  const r = await get('/artifactory/api/repositories', { asOf: ctx.asOf });
  main.append(table(['Key', 'Class', 'Package type', 'Project', 'Shared with', ''], r.map((x) => [
    x.key, x.rclass, x.packageType, x.projectKey || '—',
    x.sharedWithAllProjects ? 'all projects' : (x.sharedWithProjects || []).join(', ') || '—',
    ctx.readOnly || !ctx.session.admin ? '' : button('Delete', async () => { await del(`/artifactory/api/repositories/${enc(x.key)}`); ctx.refresh(); }, { danger: true, confirmText: `Delete repository ${x.key}?` }),
  ])));
  // Registering and deleting are an admin's (the API refuses anyone else).
  if (ctx.session.admin) main.append(pastNote(ctx) || form('Register a repository', [
    { name: 'key', label: 'Key', required: true },
    { name: 'rclass', label: 'Class', type: 'select', options: ['local', 'remote', 'virtual', 'federated'] },
    { name: 'packageType', label: 'Package type', value: 'generic' },
  ], 'Register repository', async (v) => {
    await put(`/artifactory/api/repositories/${enc(v.key)}`, { rclass: v.rclass, packageType: v.packageType });
    ctx.refresh();
  }));
}

// ---- Projects ----
async function projects(main, ctx) {
  if (ctx.arg) return project(main, ctx, ctx.arg);
  title(main, 'Projects', ctx);
  const r = await get('/access/api/v1/projects', { asOf: ctx.asOf });
  main.append(table(['Key', 'Name', 'Description'], r.map((p) => [link(ctx, 'projects', p.project_key, p.project_key), p.display_name, p.description || ''])));
  if (ctx.session.admin) main.append(pastNote(ctx) || form('Create a project', [
    { name: 'project_key', label: 'Key', required: true },
    { name: 'display_name', label: 'Display name', required: true },
    { name: 'description', label: 'Description' },
  ], 'Create project', async (v) => {
    await post('/access/api/v1/projects', { project_key: v.project_key, display_name: v.display_name, description: v.description || undefined });
    ctx.go('projects', v.project_key);
  }));
}

async function project(main, ctx, key) {
  const base = `/access/api/v1/projects/${enc(key)}`;
  // Each part on its own: a Project Admin may read the project but not its members (a
  // project without `manage_resources`), and one refusal blanked the whole page.
  const part = (path) => get(path, { asOf: ctx.asOf }).catch((e) => ({ refused: e.message || String(e) }));
  const [p, us, gs, roles, repos] = await Promise.all([
    get(base, { asOf: ctx.asOf }), part(`${base}/users`), part(`${base}/groups`),
    part(`${base}/roles`), get('/artifactory/api/repositories', { asOf: ctx.asOf }).catch(() => []),
  ]);
  title(main, `Project ${p.display_name} (${p.project_key})`, ctx);
  const shown = (heading, r, draw) => {
    main.append(h('h2', {}, heading));
    main.append(r && r.refused ? h('p', { class: 'error' }, `Not shown: ${r.refused}`) : draw(r));
  };
  const members = (r) => (r.members || r || []).map((m) => [m.name, (m.roles || []).join(', ')]);
  shown('Members: users', us, (r) => table(['User', 'Roles'], members(r)));
  shown('Members: groups', gs, (r) => table(['Group', 'Roles'], members(r)));
  shown('Roles', roles, (r) => table(['Role', 'Type', 'Environments', 'Actions'], (r || []).map((x) => [x.name, x.type, (x.environments || []).join(', '), (x.actions || []).join(', ')])));
  main.append(h('h2', {}, 'Repositories'), table(['Repository', 'How'], repos.filter((r) => r.projectKey === p.project_key || (r.sharedWithProjects || []).includes(p.project_key)).map((r) => [r.key, r.projectKey === p.project_key ? 'owned' : 'shared'])));
  if (ctx.readOnly) { main.append(pastNote(ctx)); return; }
  main.append(form('Set a member’s roles', [
    { name: 'kind', label: 'Member kind', type: 'select', options: ['users', 'groups'] },
    { name: 'name', label: 'Name', required: true },
    { name: 'roles', label: 'Roles (comma-separated; empty removes the member)', value: 'Developer' },
  ], 'Save member', async (v) => {
    if (list(v.roles).length) await put(`${base}/${v.kind}/${enc(v.name)}`, { roles: list(v.roles) });
    else await del(`${base}/${v.kind}/${enc(v.name)}`);
    ctx.refresh();
  }));
  const known = new Set((roles && !roles.refused ? roles : []).map((r) => r.name));
  main.append(form('Create or change a custom role', [
    { name: 'name', label: 'Role name', required: true },
    { name: 'environments', label: 'Environments (comma-separated, e.g. DEV, PROD)', value: 'DEV' },
    { name: 'actions', label: 'Actions (comma-separated, e.g. READ_REPOSITORY, ANNOTATE_REPOSITORY)', value: 'READ_REPOSITORY' },
  ], 'Save role', async (v) => {
    const body = { name: v.name, type: 'CUSTOM', environments: list(v.environments), actions: list(v.actions) };
    if (known.has(v.name)) await put(`${base}/roles/${enc(v.name)}`, body);
    else await post(`${base}/roles`, body);
    ctx.refresh();
  }));
  const custom = (roles && !roles.refused ? roles : []).filter((r) => r.type === 'CUSTOM');
  if (custom.length) {
    main.append(h('p', {}, custom.map((r) => button(`Delete role ${r.name}`, async () => { await del(`${base}/roles/${enc(r.name)}`); ctx.refresh(); }, { danger: true, confirmText: `Delete role ${r.name}?` }))));
  }
  main.append(form('Attach a repository', [{ name: 'repo', label: 'Repository key', required: true }], 'Attach', async (v) => {
    await put(`/access/api/v1/projects/_/attach/repositories/${enc(v.repo)}/${enc(p.project_key)}`, {});
    ctx.refresh();
  }));
  if (ctx.session.admin) main.append(h('p', {}, button(`Delete project ${p.project_key}`, async () => { await del(base); ctx.go('projects', ''); }, { danger: true, confirmText: `Delete project ${p.project_key}?` })));
}

// ---- Access keys and entitlements ----
async function accessKeys(main, ctx) {
  title(main, 'Access keys and entitlements', ctx);
  const org = ctx.arg;
  main.append(form('Organisation', [{ name: 'org', label: 'Organisation', value: org || '', required: true }], 'Show', async (v) => ctx.go('access-keys', v.org), { inline: true }));
  if (!org) return;
  const base = `/access/api/v1/orgs/${enc(org)}`;
  const [keys, ents] = await Promise.all([get(`${base}/access_keys`, { asOf: ctx.asOf }), get(`${base}/entitlements`, { asOf: ctx.asOf })]);
  const arr = (x, k) => Array.isArray(x) ? x : (x[k] || []);
  main.append(h('h2', {}, `Access keys of ${org}`));
  main.append(table(['Id', 'Expiry', 'Allowed CIDRs', ''], arr(keys, 'access_keys').map((k) => [k.id, k.expiry ? new Date(k.expiry).toISOString() : '—', (k.allowed_cidrs || []).join(', '),
    ctx.readOnly ? '' : button('Delete', async () => { await del(`${base}/access_keys/${enc(k.id)}`); ctx.refresh(); }, { danger: true, confirmText: `Delete access key ${k.id}?` })])));
  main.append(h('h2', {}, 'Entitlements'));
  main.append(table(['Id', 'Repository', 'Path / package', 'Access', 'Access keys', ''], arr(ents, 'entitlements').map((e) => [e.id, e.repo, e.path || [e.package, e.version].filter(Boolean).join('@') || '(whole repository)', e.access, (e.access_keys || []).join(', '),
    ctx.readOnly ? '' : button('Delete', async () => { await del(`${base}/entitlements/${enc(e.id)}`); ctx.refresh(); }, { danger: true, confirmText: `Delete entitlement ${e.id}?` })])));
  if (ctx.readOnly) { main.append(pastNote(ctx)); return; }
  let shown = null;
  main.append(form('Create an access key', [
    { name: 'id', label: 'Id', required: true },
    { name: 'password', label: 'Password (empty: one is generated)', type: 'password' },
    { name: 'expiry', label: 'Expires (UTC date and time, optional)', type: 'datetime-local' },
    { name: 'allowed_cidrs', label: 'Allowed networks (comma-separated CIDRs, optional)' },
    { name: 'blocked_cidrs', label: 'Blocked networks (comma-separated CIDRs, optional)' },
  ], 'Create access key', async (v) => {
    const body = { id: v.id };
    if (v.password) body.password = v.password;
    if (v.expiry) body.expiry = Date.parse(v.expiry + 'Z');
    if (v.allowed_cidrs) body.allowed_cidrs = list(v.allowed_cidrs);
    if (v.blocked_cidrs) body.blocked_cidrs = list(v.blocked_cidrs);
    const r = await post(`${base}/access_keys`, body);
    if (shown) shown.remove();
    shown = h('div', {}, h('p', {}, `Access key ${v.id}@${org} created. Its password is shown this once:`), h('p', { class: 'secret' }, r.password || '(given)'));
    main.append(shown);
  }));
  main.append(form('Create an entitlement', [
    { name: 'repo', label: 'Repository', required: true }, { name: 'path', label: 'Path (optional)' },
    { name: 'access', label: 'Access', type: 'select', options: ['r', 'rw'] },
    { name: 'access_keys', label: 'Access keys (comma-separated ids)' },
  ], 'Create entitlement', async (v) => {
    await post(`${base}/entitlements`, { repo: v.repo, path: v.path || undefined, access: v.access, access_keys: list(v.access_keys) });
    ctx.refresh();
  }));
}

// ---- Tokens ----
async function tokens(main, ctx) {
  title(main, 'Tokens', ctx);
  const r = await get('/access/api/v1/tokens', { asOf: ctx.asOf });
  const when = (s) => s ? new Date(s * 1000).toISOString().replace('.000', '') : 'never';
  main.append(table(['Token id', 'Subject', 'Scope', 'Description', 'Issued', 'Expires', ''], r.tokens.map((t) => [
    h('code', {}, t.token_id), t.subject.replace(/^.*\/users\//, ''), t.scope, t.description || '', when(t.issued_at), when(t.expiry),
    ctx.readOnly ? '' : button('Revoke', async () => { await del(`/access/api/v1/tokens/${enc(t.token_id)}`); ctx.refresh(); }, { danger: true, confirmText: `Revoke token ${t.token_id}?` }),
  ])));
  if (ctx.readOnly) { main.append(pastNote(ctx)); return; }
  const once = h('div', { 'aria-live': 'polite' });
  main.append(form('Create a token', [
    { name: 'username', label: 'For user', value: ctx.session.username },
    { name: 'scope', label: 'Scope', value: 'applied-permissions/user' },
    { name: 'expires_in', label: 'Expires in (seconds; 0: never)', type: 'number', value: '3600' },
    { name: 'description', label: 'Description' },
  ], 'Create token', async (v) => {
    const body = { username: v.username, scope: v.scope, description: v.description || undefined, force_revocable: true };
    if (v.expires_in !== '') body.expires_in = Number(v.expires_in);
    const t = await post('/access/api/v1/tokens', body);
    once.replaceChildren(
      h('h2', {}, 'Your new token'),
      h('p', {}, 'It is shown this once only: copy it now. Gatehouse keeps no copy it could show again.'),
      h('p', { class: 'secret', id: 'new-token' }, t.access_token),
      h('p', {}, `Token id ${t.token_id}.`),
      h('button', { type: 'button', onclick: () => ctx.refresh() }, 'Done: hide it and show the list'));
    once.querySelector('button').focus();
  }));
  main.append(once);
}

// ---- Webhooks ----
async function webhooks(main, ctx) {
  title(main, 'Webhook subscriptions', ctx);
  const subs = await get('/event/api/v1/subscriptions', { asOf: ctx.asOf });
  main.append(table(['Key', 'Domain', 'Events', 'Enabled', 'Handlers', ''], subs.map((s) => [
    link(ctx, 'webhooks', s.key, s.key), (s.event_filter || {}).domain || '', ((s.event_filter || {}).event_types || []).join(', '),
    s.enabled ? 'yes' : 'no', (s.handlers || []).map((x) => x.url).join(', '),
    ctx.readOnly ? '' : button('Delete', async () => { await del(`/event/api/v1/subscriptions/${enc(s.key)}`); ctx.go('webhooks', ''); }, { danger: true, confirmText: `Delete subscription ${s.key}?` }),
  ])));
  if (ctx.arg) {
    const key = ctx.arg;
    // Delivery state is the present's: a subscription deleted since has none (404).
    const gone = (e) => { if (e instanceof ApiError && e.status === 404) return null; throw e; };
    const [d, f] = await Promise.all([get(`/event/api/v1/subscriptions/${enc(key)}/deliveries`).catch(gone), get(`/event/api/v1/subscriptions/${enc(key)}/failed`).catch(gone)]);
    if (!d || !f) {
      main.append(h('p', {}, `${key} does not exist now: it has no deliveries or dead letters to show.`));
      if (ctx.readOnly) main.append(pastNote(ctx));
      return;
    }
    main.append(h('h2', {}, `Deliveries of ${key} (now)`));
    main.append(h('p', {}, `Pending ${d.pending_count}, failed ${d.failed_count}${d.last_error ? ', last error: ' + d.last_error : ''}.`));
    main.append(table(['Position', 'Event', 'Status', 'Time'], (d.attempts || []).map((a) => [String(a.position), a.event_type, String(a.status_code ?? a.error ?? ''), a.time || ''])));
    main.append(h('h2', {}, 'Dead letters (now)'));
    main.append(table(['Position', 'Event', 'Name', 'Attempts', 'Last error'], (f.failed || []).map((x) => [String(x.position), x.event_type, x.name || '', String(x.attempts), x.last_error || ''])));
    if ((f.failed || []).length && !ctx.readOnly) main.append(button('Re-drive all dead letters', async () => { await post(`/event/api/v1/subscriptions/${enc(key)}/failed/redrive`, {}); ctx.refresh(); }));
  }
  if (ctx.readOnly) { main.append(pastNote(ctx)); return; }
  main.append(form('Create a subscription', [
    { name: 'key', label: 'Key', required: true }, { name: 'domain', label: 'Domain', value: 'user' },
    { name: 'event_types', label: 'Event types (comma-separated)', value: 'created' },
    { name: 'include', label: 'Names to include (patterns, comma-separated)', value: '**' },
    { name: 'url', label: 'Webhook URL', required: true }, { name: 'secret', label: 'Secret', type: 'password' },
  ], 'Create subscription', async (v) => {
    const handler = { handler_type: 'webhook', url: v.url };
    if (v.secret) handler.secret = v.secret;
    await post('/event/api/v1/subscriptions', { key: v.key, enabled: true, event_filter: { domain: v.domain, event_types: list(v.event_types), criteria: { includePatterns: list(v.include) } }, handlers: [handler] });
    ctx.go('webhooks', v.key);
  }));
}

// ---- Federation ----
async function federation(main, ctx) {
  title(main, 'Federation targets', ctx);
  const r = await get('/access/api/v1/system/federation', { asOf: ctx.asOf });
  const targets = r.configurations || [];
  const statuses = ctx.readOnly ? [] : await Promise.all(targets.map((t) => get(`/access/api/v1/system/federation/${enc(t.name)}/status`).catch((e) => ({ last_error: e.message }))));
  main.append(table(['Name', 'URL', 'Entities', 'Active', 'Cursor / lag', 'Last error', ''], targets.map((t, i) => {
    const s = statuses[i] || {};
    return [t.name, t.url, (t.entities || []).join(', '), t.active ? 'yes' : 'no',
      ctx.readOnly ? '(now only)' : `${s.cursor ?? '—'} / ${s.lag_events ?? '—'} events`, s.last_error || '',
      ctx.readOnly ? '' : button('Delete', async () => { await del(`/access/api/v1/system/federation/${enc(t.name)}`); ctx.refresh(); }, { danger: true, confirmText: `Delete target ${t.name}?` })];
  })));
  main.append(pastNote(ctx) || form('Register a target', [
    { name: 'name', label: 'Name', required: true }, { name: 'url', label: 'URL of the peer', required: true },
    { name: 'entities', label: 'Entities (comma-separated)', value: 'users, groups, permissions, tokens' },
  ], 'Register target', async (v) => {
    await post('/access/api/v1/system/federation', { name: v.name, url: v.url, entities: list(v.entities), active: true });
    ctx.refresh();
  }));
}

// ---- Signing keys and the circle of trust ----
async function keys(main, ctx) {
  title(main, 'Signing keys and the circle of trust', ctx);
  if (ctx.readOnly) {
    // The key endpoints answer for now (JWT libraries fetch the JWKS); the keys of a past
    // moment are read from the audit state at that position, which only admins may read.
    if (!ctx.session.admin) {
      main.append(h('p', {}, 'The keys of a past moment are shown to administrators only.'));
      return;
    }
    const st = await get('/access/api/v1/audit/state', { asOf: ctx.asOf });
    const k = st.keys || {};
    const retired = new Set(k.retired || []);
    main.append(h('h2', {}, 'Token-signing keys then'));
    main.append(table(['Key id', 'Algorithm', 'Signing new tokens'], Object.keys(k.signing || {}).filter((kid) => !retired.has(kid))
      .map((kid) => [h('code', {}, kid), 'EdDSA', kid === k.active ? 'yes' : ''])));
    main.append(h('h2', {}, 'Trusted peers (circle of trust) then'));
    main.append(table(['Name', 'Key id'], Object.entries(k.trusted || {})
      .map(([name, v]) => [name, h('code', {}, Array.isArray(v) ? v[0] : '')])));
    return;
  }
  const jwks = await get('/access/api/v1/cert/jwks');
  main.append(h('h2', {}, 'This server’s token-signing keys (now)'));
  main.append(table(['Key id', 'Algorithm', 'Curve', 'Use'], jwks.keys.map((k) => [h('code', {}, k.kid), k.alg, k.crv || '', k.use || ''])));
  if (!ctx.session.admin) return;
  const trusted = await get('/access/api/v1/cert/trusted');
  main.append(h('h2', {}, 'Trusted peers (circle of trust, now)'));
  main.append(table(['Name', 'Key id', 'Algorithm', ''], trusted.trusted.map((t) => [t.name, h('code', {}, t.kid), t.alg,
    button('Remove', async () => { await del(`/access/api/v1/cert/trusted/${enc(t.name)}`); ctx.refresh(); }, { danger: true, confirmText: `Stop trusting ${t.name}?` })])));
  main.append(form('Trust a peer’s key', [
    { name: 'name', label: 'Name', required: true },
    { name: 'certificate', label: 'Certificate or public key (PEM)', type: 'textarea', required: true },
  ], 'Trust', async (v) => { await post('/access/api/v1/cert/trusted', { name: v.name, certificate: v.certificate }); ctx.refresh(); }));
  main.append(h('p', {}, button('Rotate the signing key', async () => { await post('/access/api/v1/cert/root/rotate', {}); ctx.refresh(); }, { confirmText: 'Rotate the token-signing key?' })));
}

export const PAGES = {
  users, me, groups, permissions, repositories, projects, 'access-keys': accessKeys,
  tokens, webhooks, federation, keys,
};
