// HTTP API of the Aurora server: auth, room history and presence. Every
// error of the server is {"error": "..."} with a 4xx/5xx status; callers get
// an ApiError carrying both, so the page can say exactly what went wrong.

export class ApiError extends Error {
  constructor(status, message, retryAfter = 0) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0: the server could not be reached
    this.retryAfter = retryAfter; // seconds, from Retry-After on 429
  }
}

async function request(method, path, { body, token, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Cannot reach the server. Check your connection and try again.');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const msg = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
    const retry = parseInt(res.headers.get('Retry-After') || '0', 10);
    throw new ApiError(res.status, msg, Number.isFinite(retry) ? retry : 0);
  }
  return data;
}

export function register(username, password) {
  return request('POST', '/api/auth/register', { body: { username, password } });
}

export function login(username, password) {
  return request('POST', '/api/auth/login', { body: { username, password } });
}

export function me(token) {
  return request('GET', '/api/auth/me', { token });
}

// history returns {messages, hasMore}: newest first without a cursor or with
// before, oldest first with after.
export function history(token, room, { before, after, limit = 50 } = {}) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (before) q.set('before', before);
  if (after) q.set('after', after);
  return request('GET', `/api/rooms/${encodeURIComponent(room)}/messages?${q}`, { token });
}

export function presence(token, room) {
  return request('GET', `/api/rooms/${encodeURIComponent(room)}/presence`, { token });
}
