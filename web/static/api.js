// HTTP API of the Aurora server: auth, history, presence, and rooms and
// people (rooms, directory, members, invitations, direct rooms,
// moderation; docs/protocol.md has the shapes). Every
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

// ---- Rooms and people ------------------------------------------------------

const roomPath = (room) => `/api/rooms/${encodeURIComponent(room)}`;

// rooms returns {rooms: [{name, type, title, topic, role, peer?}]}: the
// rooms the caller is a member of.
export function rooms(token, signal) {
  return request('GET', '/api/rooms', { token, signal });
}

export function createRoom(token, { name, type, topic }) {
  return request('POST', '/api/rooms', { token, body: { name, type, topic } });
}

// directory returns one page of public rooms matching q; the answer's
// cursor (when present) asks for the next page.
export function directory(token, { q = '', cursor = '' } = {}) {
  const p = new URLSearchParams({ q });
  if (cursor) p.set('cursor', cursor);
  return request('GET', `/api/rooms/directory?${p}`, { token });
}

// room returns {room, role, serverAdmin}: the room and the caller's standing.
export function room(token, name) {
  return request('GET', roomPath(name), { token });
}

export function updateRoom(token, name, { title, topic }) {
  return request('PATCH', roomPath(name), { token, body: { title, topic } });
}

export function deleteRoom(token, name) {
  return request('DELETE', roomPath(name), { token });
}

export function joinRoom(token, name) {
  return request('POST', `${roomPath(name)}/join`, { token });
}

export function leaveRoom(token, name) {
  return request('POST', `${roomPath(name)}/leave`, { token });
}

// members returns {members: [{userId, username, role, joinedAt, mutedUntil?}]}.
export function members(token, name) {
  return request('GET', `${roomPath(name)}/members`, { token });
}

// users returns {users: [{id, username}]} matching q: the invite and
// direct-message pickers.
export function users(token, q) {
  return request('GET', `/api/users?${new URLSearchParams({ q })}`, { token });
}

export function openDM(token, username) {
  return request('POST', '/api/dm', { token, body: { username } });
}

export function inviteUser(token, name, username) {
  return request('POST', `${roomPath(name)}/invites`, { token, body: { username } });
}

// inviteLink creates a link token; maxUses 0 is unlimited, expiresIn is in
// seconds (0: the server's default, 7 days).
export function inviteLink(token, name, { maxUses, expiresIn }) {
  return request('POST', `${roomPath(name)}/invites`, { token, body: { maxUses, expiresIn } });
}

// roomInvites returns the room's open invitations and links (admins).
export function roomInvites(token, name) {
  return request('GET', `${roomPath(name)}/invites`, { token });
}

export function revokeInvite(token, invite) {
  return request('DELETE', `/api/invites/${encodeURIComponent(invite)}`, { token });
}

// invites returns {invites: [{token, room, by, ...}]}: my pending invitations.
export function invites(token) {
  return request('GET', '/api/invites', { token });
}

export function acceptInvite(token, invite) {
  return request('POST', `/api/invites/${encodeURIComponent(invite)}/accept`, { token });
}

export function declineInvite(token, invite) {
  return request('POST', `/api/invites/${encodeURIComponent(invite)}/decline`, { token });
}

export function kick(token, name, userId, reason) {
  return request('POST', `${roomPath(name)}/kick`, { token, body: { userId, reason } });
}

// ban keeps userId out until expiresAt (RFC 3339; "" is for good).
export function ban(token, name, userId, reason, expiresAt) {
  return request('POST', `${roomPath(name)}/bans`, { token, body: { userId, reason, expiresAt } });
}

// mute stops userId sending until until (RFC 3339).
export function mute(token, name, userId, until) {
  return request('POST', `${roomPath(name)}/mutes`, { token, body: { userId, until } });
}

// setRole changes a member's role; "owner" transfers the ownership.
export function setRole(token, name, userId, role) {
  return request('PUT', `${roomPath(name)}/members/${encodeURIComponent(userId)}`, { token, body: { role } });
}

// ---- Message life: search and attachments ---------------------------------

// search returns {messages: [frame + highlights], hasMore}: messages of the
// rooms the caller may read matching q (newest first); room, user (a
// username), before and after (message ids) narrow it.
export function search(token, { q, room = '', user = '', before = '', after = '', limit = 20 }) {
  const p = new URLSearchParams({ q, limit: String(limit) });
  if (room) p.set('room', room);
  if (user) p.set('user', user);
  if (before) p.set('before', before);
  if (after) p.set('after', after);
  return request('GET', `/api/search?${p}`, { token });
}

// upload sends file as the raw body of POST /api/rooms/{room}/attachments
// (its name in ?filename=) with XMLHttpRequest, whose upload events give
// the progress bar (fetch has none for request bodies); onProgress gets
// (sent, total). It resolves to the {url, fileType, size, filename} the
// server stored and rejects with an ApiError (413 too large, 415 a type not
// allowed, 429 too many uploads with its Retry-After); abort() of the
// returned handle cancels it (an AbortError).
export function upload(token, room, file, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    const q = new URLSearchParams({ filename: file.name || 'file' });
    xhr.open('POST', `${roomPath(room)}/attachments?${q}`);
    xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'text';
    xhr.upload.onprogress = (ev) => {
      if (onProgress) onProgress(ev.loaded, ev.lengthComputable ? ev.total : file.size);
    };
    xhr.onload = () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data && data.attachment && typeof data.attachment.url === 'string') {
        resolve(data.attachment);
        return;
      }
      const msg = data && typeof data.error === 'string' ? data.error : `HTTP ${xhr.status}`;
      reject(new ApiError(xhr.status, msg, Number(xhr.getResponseHeader('Retry-After')) || 0));
    };
    xhr.onerror = () => reject(new ApiError(0, 'Cannot reach the server. Check your connection and try again.'));
    xhr.onabort = () => reject(new DOMException('upload cancelled', 'AbortError'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

// download fetches an attachment with the token (downloads need it, so a
// plain link or <img src> cannot) and returns its Blob.
export async function download(token, path) {
  let res;
  try {
    res = await fetch(path, {
      headers: { Authorization: 'Bearer ' + token },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'Cannot reach the server. Check your connection and try again.');
  }
  if (!res.ok) throw new ApiError(res.status, `HTTP ${res.status}`);
  return res.blob();
}
