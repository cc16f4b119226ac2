// The console's only way to the server: the public REST API, with the session cookie
// (sent by the browser) and the session's CSRF token in `X-CSRF-Token`.
let csrf = null;

export function setCsrf(token) { csrf = token; }

export class ApiError extends Error {
  constructor(status, data) {
    const msg = data && data.errors && data.errors[0] && data.errors[0].message;
    super(msg || (typeof data === 'string' && data) || `HTTP ${status}`);
    this.status = status;
    this.data = data;
  }
  // The field the API named (`invalid \`name\`: …`), if any.
  get field() {
    const m = /(?:invalid|at) `([^`]+)`/.exec(this.message);
    return m ? m[1] : null;
  }
}

export async function api(method, path, { body, query, asOf, headers, form } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  if (asOf) url.searchParams.set('as_of', asOf);
  const h = { Accept: 'application/json', ...(headers || {}) };
  // Always sent: it also tells the server not to answer a 401 with a Basic challenge.
  h['X-CSRF-Token'] = csrf || '';
  let payload;
  if (form !== undefined) {
    payload = new URLSearchParams(form);
  } else if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(url, { method, headers: h, body: payload, credentials: 'same-origin', cache: 'no-store' });
  const text = await r.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (path, opts) => api('GET', path, opts);
export const post = (path, body, opts = {}) => api('POST', path, { ...opts, body });
export const put = (path, body, opts = {}) => api('PUT', path, { ...opts, body });
export const patch = (path, body, opts = {}) => api('PATCH', path, { ...opts, body });
export const del = (path, opts) => api('DELETE', path, opts);
export const enc = encodeURIComponent;
