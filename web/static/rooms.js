// Pure rules of rooms and people, as the page applies them: who may do
// what to whom (to decide which controls to show; the server decides what
// is allowed and the page shows its refusal), how a room event reads in the
// timeline, what a refusal says, and the invite link in the URL.
//
// The roles and their order are the server's (docs/protocol.md): owner >
// admin > member > readonly. Server administrators act in every public or
// private room as an owner does; nobody moderates a direct room.

export const ROLES = Object.freeze(['owner', 'admin', 'member', 'readonly']);
const RANK = Object.freeze({ owner: 4, admin: 3, member: 2, readonly: 1 });

export const ROLE_LABEL = Object.freeze({
  owner: 'Owner', admin: 'Admin', member: 'Member', readonly: 'Read-only',
});

function rank(role) {
  return RANK[role] || 0;
}

// standing is what the page knows of the viewer in a room:
// {role, serverAdmin, type}. role is "" for a non-member.

// canManageRoom: change the title and topic, create invitations.
export function canManageRoom(s) {
  if (!s || s.type === 'direct') return false;
  return !!s.serverAdmin || rank(s.role) >= RANK.admin;
}

// canDeleteRoom: the owner, or a server administrator.
export function canDeleteRoom(s) {
  if (!s || s.type === 'direct') return false;
  return !!s.serverAdmin || s.role === 'owner';
}

// canSend: readonly members read only.
export function canSend(s) {
  return !s || s.role !== 'readonly';
}

// memberActions lists what the viewer may do to target ({userId, role}):
// {kick, ban, mute, roles: [roles it may give]}, everything false/empty for
// oneself, in direct rooms and below the rank needed. Owners act on admins
// and below and may hand the ownership over; admins act on members and
// readonly members and give only those two roles.
export function memberActions(s, target, meId) {
  const none = { kick: false, ban: false, mute: false, roles: [] };
  if (!s || !target || s.type === 'direct' || target.userId === meId) return none;
  let roles;
  if (s.serverAdmin || s.role === 'owner') {
    if (target.role === 'owner' && !s.serverAdmin) return none;
    // The hand-over last: the most drastic choice is never the first one.
    roles = ['admin', 'member', 'readonly', 'owner'];
  } else if (s.role === 'admin') {
    if (rank(target.role) >= RANK.admin) return none;
    roles = ['member', 'readonly'];
  } else {
    return none;
  }
  return { kick: true, ban: true, mute: true, roles: roles.filter((r) => r !== target.role) };
}

// roomLabel is the name a room goes by in the sidebar and the title bar:
// the peer for a direct room, the title when one is set, else the name.
export function roomLabel(info, name) {
  if (info && info.type === 'direct') {
    return (info.peer && info.peer.username) || 'Direct message';
  }
  return (info && info.title) || name;
}

// isDirectName: direct rooms are named dm-<id>-<id> (the server's rule);
// the page uses it only until the room's record arrives.
export function isDirectName(name) {
  return /^dm-[0-9a-f]{24}-[0-9a-f]{24}$/.test(name);
}

// ---- Room events --------------------------------------------------------

// eventText is the system line of a room event frame (type "room_event"),
// live or from history: actor `user`, `target`/`targetName`, and the
// event's own fields. An unknown event falls back to the server's text.
export function eventText(f, now = Date.now()) {
  const actor = str(f.user) || 'Someone';
  const target = str(f.targetName) || 'someone';
  const why = str(f.reason) ? `: ${str(f.reason)}` : '';
  switch (f.event) {
    case 'room_created':
      return `${actor} created the ${f.roomType === 'private' ? 'private ' : ''}room`;
    case 'room_updated': {
      const parts = [];
      if (typeof f.title === 'string') parts.push(f.title ? `renamed the room to “${f.title}”` : 'cleared the room name');
      if (typeof f.topic === 'string') parts.push(f.topic ? `set the topic to “${f.topic}”` : 'cleared the topic');
      return `${actor} ${parts.length ? parts.join(' and ') : 'updated the room'}`;
    }
    case 'room_deleted': return `${actor} deleted the room`;
    case 'member_joined': return `${str(f.targetName) || actor} joined`;
    case 'member_left': return `${str(f.targetName) || actor} left`;
    case 'member_invited': return `${actor} invited ${target}`;
    case 'member_kicked': return `${actor} kicked ${target}${why}`;
    case 'member_banned': return `${actor} banned ${target}${untilText(f.until, now, 'for good')}${why}`;
    case 'member_unbanned': return `${actor} lifted the ban on ${target}`;
    case 'member_muted': return `${actor} muted ${target}${untilText(f.until, now, '')}${why}`;
    case 'role_changed': return `${actor} made ${target} ${ROLE_AS[f.role] || str(f.role) || 'a member'}`;
    case 'owner_transferred': return `${actor} made ${target} the owner`;
    default: return str(f.text) || `${actor}: ${str(f.event) || 'room event'}`;
  }
}

const ROLE_AS = Object.freeze({
  owner: 'the owner', admin: 'an admin', member: 'a member', readonly: 'read-only',
});

function str(v) {
  return typeof v === 'string' ? v : '';
}

// untilText: " until 14:05" today, " until 3 Dec 2026, 14:05" later;
// without a time, fallback (" for good").
export function untilText(until, now = Date.now(), fallback = '') {
  const t = typeof until === 'number' ? until : Date.parse(until || '');
  if (!Number.isFinite(t) || t <= 0) return fallback ? ` ${fallback}` : '';
  const d = new Date(t);
  const sameDay = new Date(now).toDateString() === d.toDateString();
  const fmt = sameDay
    ? { hour: '2-digit', minute: '2-digit' }
    : { dateStyle: 'medium', timeStyle: 'short' };
  return ` until ${new Intl.DateTimeFormat(undefined, fmt).format(d)}`;
}

// ---- Refusals -----------------------------------------------------------

// refusalText says why the server refused a frame about room, from the
// WebSocket error code (null when the code is not a room refusal: the
// server's own message says it best).
export function refusalText(code, room, message = '') {
  const r = `#${room}`;
  switch (code) {
    case 'not_found': return `${r} does not exist, or it is private and you are not a member.`;
    case 'banned': return `You are banned from ${r}.`;
    case 'forbidden':
      // The server's words say which right is missing ("join … first",
      // "you can read … but not write in it", "only admins of … may do that").
      if (/\bread\b.*\bnot write\b/i.test(message)) return `You can only read ${r}: you cannot write in it.`;
      return message ? `Not allowed in ${r}: ${clause(message)}.` : `You are not allowed to do that in ${r}.`;
    case 'muted': return `You are muted in ${r}${mutedUntil(message)}.`;
    default: return null;
  }
}

// The server's muted message may carry the end of the mute as an RFC 3339
// time or a number of milliseconds.
function mutedUntil(message) {
  const iso = /\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d)/.exec(message || '');
  if (iso) return untilText(iso[0]);
  const ms = /\b(\d{13})\b/.exec(message || '');
  return ms ? untilText(Number(ms[1])) : '';
}

// httpRefusal words an API refusal ({status, message}) of an action.
export function httpRefusal(status, message) {
  const m = String(message || '').trim();
  const said = m && !/^HTTP \d+$/.test(m) ? m[0].toUpperCase() + m.slice(1).replace(/[.!]?$/, '.') : '';
  switch (status) {
    case 0: return m || 'Cannot reach the server.';
    case 403: return said ? `Not allowed: ${lower(said)}` : 'You are not allowed to do that.';
    case 404: return 'Not found: the room or user does not exist, or you cannot see it.';
    case 409: return said || 'That conflicts with what exists already.';
    case 400: return said || 'The server did not accept that.';
    case 429: return 'Too many requests. Wait a moment and try again.';
    default: return said || `The server answered ${status}.`;
  }
}

// clause: the server's sentence as part of ours, without its full stop.
function clause(s) {
  return String(s).trim().replace(/[.!]+$/, '');
}

function lower(s) {
  return s ? s[0].toLowerCase() + s.slice(1) : s;
}

// removedText explains a "removed" frame: the room is gone from the list.
export function removedText(f) {
  const r = `#${str(f.room)}`;
  const detail = str(f.detail) ? ` Reason: ${str(f.detail)}` : '';
  switch (f.reason) {
    case 'kicked': return `You were removed from ${r}.${detail}`;
    case 'banned': return `You were banned from ${r}.${detail}`;
    case 'deleted': return `${r} was deleted.${detail}`;
    case 'left': return `You left ${r}.`;
    default: return `You are no longer in ${r}.${detail}`;
  }
}

// ---- Invite links -------------------------------------------------------

// Invite links are <origin>/#invite=<token>: the fragment never reaches a
// server log, and opening one accepts it.
export function inviteURL(origin, token) {
  return `${origin}/#invite=${encodeURIComponent(token)}`;
}

// inviteToken returns the token of an invite-link fragment, or "".
export function inviteToken(hash) {
  const m = /^#invite=([A-Za-z0-9_~.%-]{1,512})$/.exec(hash || '');
  if (!m) return '';
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return '';
  }
}

// inviteFrom names who sent an invitation ({by} may be a name, or a user
// object).
export function inviteFrom(inv) {
  if (!inv) return '';
  const by = inv.by;
  if (by && typeof by === 'object') return str(by.username);
  return str(inv.byName) || str(inv.byUsername) || (typeof by === 'string' && !/^[0-9a-f]{24}$/.test(by) ? by : '');
}

// inviteRoom is the room name of an invitation ({room} a name or a room).
export function inviteRoom(inv) {
  if (!inv) return '';
  return inv.room && typeof inv.room === 'object' ? str(inv.room.name) : str(inv.room);
}

// ---- Times --------------------------------------------------------------

// rfc3339After is now + ms as the API's RFC 3339 time; 0 is "" (no end).
export function rfc3339After(ms, now = Date.now()) {
  return ms > 0 ? new Date(now + ms).toISOString() : '';
}
