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

// renderText appends text to parent as text nodes and safe links.
export function renderText(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    const trail = TRAILING.exec(url);
    if (trail) url = url.slice(0, url.length - trail[0].length);
    const href = safeHref(url);
    if (!href) continue;
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    const a = document.createElement('a');
    a.href = href;
    a.textContent = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    parent.append(a);
    last = m.index + url.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
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
