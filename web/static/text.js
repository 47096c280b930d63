// Pure helpers: message ids, validation rules, safe rendering of user text.
//
// User text only ever reaches the page as text nodes (textContent /
// createTextNode). Links are <a> elements built here, with an href only for
// http and https URLs, so "javascript:" and friends stay plain text.

// Message ids are Redis stream ids "<ms>-<seq>"; they order messages.
export function parseId(id) {
  const m = /^(\d+)-(\d+)$/.exec(id || '');
  if (!m) return null;
  return [Number(m[1]), Number(m[2])];
}

export function compareIds(a, b) {
  const x = parseId(a);
  const y = parseId(b);
  if (!x || !y) return String(a).localeCompare(String(b));
  return x[0] - y[0] || x[1] - y[1];
}

// The server's rules, checked here too so the user hears about them before
// a round trip.
export const ROOM_RE = /^[a-z0-9_-]{1,64}$/;
export const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;
export const MAX_TEXT = 4000;

export function passwordProblem(pw) {
  const n = new TextEncoder().encode(pw).length;
  if (n < 8) return 'The password needs at least 8 characters.';
  if (n > 72) return 'The password can be at most 72 bytes long.';
  return '';
}

// textLength counts code points, as the server counts the 4000 limit.
export function textLength(s) {
  return Array.from(s).length;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

// safeHref returns the normalised URL for an http(s) link, or "".
export function safeHref(raw) {
  let u;
  try {
    u = new URL(raw);
  } catch {
    return '';
  }
  return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '';
}

// renderText appends text to parent as text nodes and safe links; with
// mentions (a Set of lower-case usernames the message mentions), their
// @name tokens become <span class="mention"> (also "me" for meName).
export function renderText(parent, text, mentions = null, meName = '') {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    const trail = TRAILING.exec(url);
    if (trail) url = url.slice(0, url.length - trail[0].length);
    const href = safeHref(url);
    if (!href) continue;
    if (m.index > last) renderMentions(parent, text.slice(last, m.index), mentions, meName);
    const a = document.createElement('a');
    a.href = href;
    a.textContent = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    parent.append(a);
    last = m.index + url.length;
  }
  if (last < text.length) renderMentions(parent, text.slice(last), mentions, meName);
}

// MENTION_RE finds @username tokens as the server resolves them: the @ at
// the start or after a character that is not part of a name.
const MENTION_RE = /(^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{3,32})/g;

function renderMentions(parent, text, mentions, meName) {
  if (!mentions || !mentions.size || !text.includes('@')) {
    parent.append(document.createTextNode(text));
    return;
  }
  let last = 0;
  for (const m of text.matchAll(MENTION_RE)) {
    const name = m[2].replace(/[.-]+$/, ''); // "@bob." ends a sentence
    if (!mentions.has(name.toLowerCase())) continue;
    const at = m.index + m[1].length;
    if (at > last) parent.append(document.createTextNode(text.slice(last, at)));
    const span = document.createElement('span');
    span.className = 'mention' + (meName && name.toLowerCase() === meName.toLowerCase() ? ' mention-me' : '');
    span.textContent = '@' + name;
    parent.append(span);
    last = at + 1 + name.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// mentionAt finds the @prefix being typed at caret in value: {start, query}
// (start: the index of the @), or null when the caret is not in one.
export function mentionAt(value, caret) {
  const before = value.slice(0, caret);
  const m = /(^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{0,32})$/.exec(before);
  if (!m) return null;
  return { start: caret - m[2].length - 1, query: m[2] };
}

// markedParts splits text at the search highlights ([{start, end}], UTF-16
// offsets, as JavaScript strings count) into [{text, mark}] runs, so the
// page builds text nodes and <mark> elements. Bad, overlapping or
// out-of-range spans are clamped and merged, never trusted.
export function markedParts(text, highlights) {
  const spans = (Array.isArray(highlights) ? highlights : [])
    .map((h) => [Number(h && h.start), Number(h && h.end)])
    .filter(([a, b]) => Number.isInteger(a) && Number.isInteger(b) && b > a)
    .map(([a, b]) => [Math.max(0, a), Math.min(text.length, b)])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  const parts = [];
  let pos = 0;
  for (const [a, b] of spans) {
    if (b <= pos) continue;
    const from = Math.max(a, pos);
    if (from > pos) parts.push({ text: text.slice(pos, from), mark: false });
    parts.push({ text: text.slice(from, b), mark: true });
    pos = b;
  }
  if (pos < text.length) parts.push({ text: text.slice(pos), mark: false });
  return parts;
}

// REACTIONS is the page's reaction picker: common emoji, each in the
// server's allow-list (modules/chat/emoji.go).
export const REACTIONS = Object.freeze(['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '🙏']);

// IMAGE_TYPES are the types the server serves inline (docs/protocol.md,
// attachments): only they are previewed.
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

export function isPreviewable(fileType) {
  return IMAGE_TYPES.has(String(fileType || '').toLowerCase().split(';')[0].trim());
}

// attachmentPath accepts an attachment URL only as a path of this
// origin's attachment route: the page sends its token with the download,
// and must never send it anywhere else.
export function attachmentPath(url) {
  // The server's shape (app/attachment URL): a room name and a hex id.
  if (typeof url !== 'string' || !/^\/api\/rooms\/[a-z0-9_-]{1,64}\/attachments\/[0-9a-f]{8,128}$/.test(url)) return '';
  return url;
}

// formatSize: 1 KB is 1024 bytes, as file managers count.
export function formatSize(n) {
  const b = Number(n) || 0;
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(b < 10240 ? 1 : 0)} KB`;
  return `${(b / 1024 / 1024).toFixed(b < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}

// hue picks one of eight avatar colour classes for a user id.
export function hue(id) {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) | 0;
  return 'hue-' + (Math.abs(h) % 8);
}

export function initial(name) {
  const first = [...(name || '?')][0] || '?';
  return first.toUpperCase();
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

// formatTime is the short time shown next to a message: the time today,
// the date and time before.
export function formatTime(ts, now = Date.now()) {
  const d = new Date(ts);
  const sameDay = new Date(now).toDateString() === d.toDateString();
  return sameDay ? timeFmt.format(d) : `${dayFmt.format(d)} ${timeFmt.format(d)}`;
}

export function formatFull(ts) {
  return fullFmt.format(new Date(ts));
}

export function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN address is not one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
