// The API, as the console calls it: same-origin requests with the session cookie (HttpOnly: no
// script here can read it), the session's CSRF token on every change, and failures as the
// catalogue's errors.

let csrfToken = null;

/** A failure the API answered with a catalogue entry, or that never reached it. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `The server answered ${status}.`);
    this.status = status;
    this.code = body && body.code;
    this.type = body && body.type;
    this.fix = body && body.fix;
  }
}

/** Calls the API: `api('POST', '/api/v1/tokens', {...})`. Resolves with the JSON body. */
export async function api(method, path, body, { signal, query } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.set(name, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, {
      code: 'unreachable',
      message: 'The byos server did not answer.',
      fix: 'Check that the server runs and that this machine reaches it, then try again.',
    });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const err = new ApiError(response.status, json);
    if (response.status === 401) window.dispatchEvent(new CustomEvent('byos:signed-out', { detail: err }));
    throw err;
  }
  return json;
}

/** Who is signed in, or null. */
export async function currentSession() {
  try {
    const session = await api('GET', '/api/v1/session');
    csrfToken = session.csrfToken;
    return session;
  } catch (err) {
    if (err.status === 401) return null;
    throw err;
  }
}

export async function signIn(token) {
  const session = await api('POST', '/api/v1/session', { token });
  csrfToken = session.csrfToken;
  return session;
}

export async function signOut() {
  try {
    await api('DELETE', '/api/v1/session');
  } finally {
    csrfToken = null;
  }
}

/** Every item of a list route. */
export async function items(path, query) {
  const body = await api('GET', path, undefined, { query });
  return body.items;
}

/** The URL of a console page for a path inside a project: each segment encoded. */
export function dataHref(projectId, path, kind = 'data') {
  const segments = path.split('/').map(encodeURIComponent).join('/');
  return `/projects/${encodeURIComponent(projectId)}/${kind}${segments.startsWith('/') ? '' : '/'}${segments}`;
}
