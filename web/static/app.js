// Aurora's web client: log in, chat in rooms, see who is online and typing.
// Vanilla JS modules, no build step; docs/web.md describes the behaviour.
//
// Rules this file keeps:
//  - User text reaches the DOM only as text nodes (text.js renderText); no
//    HTML string is ever parsed.
//  - Every message is keyed by its server id and shown once, whichever way
//    it arrives (live frame, ack, history page, replay after a reconnect).
//  - A message typed while offline stays "pending" and is sent (again) with
//    the same clientId after the next welcome; the server answers a resend
//    with the original id, so it is never stored twice.

import * as api from './api.js';
import { ApiError } from './api.js';
import { Connection, CloseCode } from './socket.js';
import {
  compareIds, formatFull, formatTime, hue, initial, MAX_TEXT, newClientId,
  parseId, passwordProblem, renderText, ROOM_RE, textLength, USERNAME_RE,
} from './text.js';

const GENERAL = 'general';
const PAGE = 50; // messages per history page
const CATCH_UP_PAGE = 200; // the server's largest page
const CATCH_UP_PAGES = 5; // after that, a room is reloaded from the newest
const GROUP_GAP_MS = 5 * 60 * 1000; // messages of one author closer than this are grouped
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_IDLE_MS = 3000;
const TYPING_EXPIRE_MS = 6000; // a typing indicator without news fades out
const BIG_ROOM = 200; // from this many members on, presence is also polled
const PRESENCE_POLL_MS = 30000;
const PRESENCE_SETTLE_MS = 1000; // well past the server's presence coalescing (250 ms)
const AUTO_RETRIES = 3; // rate-limited resends after a reconnect retry by themselves
const COUNTER_FROM = MAX_TEXT - 500;
const AT_BOTTOM_PX = 48;
const LOAD_OLDER_PX = 120;

const LS_SESSION = 'aurora.session';
const roomsKey = (uid) => `aurora.rooms.${uid}`;
const currentKey = (uid) => `aurora.current.${uid}`;

const $ = (id) => document.getElementById(id);
const ui = {
  authView: $('auth-view'),
  authForm: $('auth-form'),
  authSub: $('auth-sub'),
  authUser: $('auth-username'),
  authPass: $('auth-password'),
  authHint: $('auth-hint'),
  authError: $('auth-error'),
  authSubmit: $('auth-submit'),
  authSwitch: $('auth-switch'),
  authSwitchText: $('auth-switch-text'),
  chatView: $('chat-view'),
  sidebar: $('sidebar'),
  sidebarToggle: $('sidebar-toggle'),
  sidebarClose: $('sidebar-close'),
  unreadBadge: $('unread-badge'),
  roomList: $('room-list'),
  joinForm: $('join-form'),
  joinRoom: $('join-room'),
  joinError: $('join-error'),
  meName: $('me-name'),
  meAvatar: $('me-avatar'),
  logout: $('logout'),
  roomTitle: $('room-title'),
  connStatus: $('conn-status'),
  membersToggle: $('members-toggle'),
  membersToggleCount: $('members-toggle-count'),
  membersPanel: $('members-panel'),
  membersClose: $('members-close'),
  memberList: $('member-list'),
  memberCount: $('member-count'),
  banner: $('banner'),
  bannerText: $('banner-text'),
  bannerRetry: $('banner-retry'),
  scroller: $('scroller'),
  historyStatus: $('history-status'),
  messages: $('messages'),
  pill: $('new-pill'),
  typing: $('typing'),
  composer: $('composer'),
  composerLabel: $('composer-label'),
  input: $('composer-input'),
  counter: $('counter'),
  send: $('send'),
  scrim: $('scrim'),
  announcer: $('announcer'),
  toasts: $('toasts'),
};

// ---- State ---------------------------------------------------------------

let session = null; // {token, expiresAt, user: {id, username}}
let conn = null;
let welcomed = false; // the current connection was greeted: frames may flow
let everConnected = false;
const rooms = new Map(); // name -> room
let roomOrder = []; // joined room names, in sidebar order
let current = GENERAL;
const pending = new Map(); // clientId -> pending or failed message of ours
const joinRequests = new Map(); // clientId of a join frame -> room name
let syntheticSeq = 0;

function newRoom(name) {
  return {
    name,
    msgs: new Map(), // id -> message
    order: [], // ids, oldest first
    pending: [], // our messages without an id yet, in send order
    lastId: null, // newest id seen: "since" of the next join
    unread: 0,
    members: new Map(), // userId -> username
    typing: new Map(), // userId -> {user, until}
    historyLoaded: false,
    historyGen: 0, // bumps to discard answers of outdated requests
    hasMore: false,
    loading: false,
    joinedWithSince: false, // the last join asked for a replay
    presenceSeq: 0, // counts presence frames, to spot outdated member lists
    settleTimer: 0,
    resync: false, // fetch what came after the history page once it arrives
  };
}

// ---- Session ---------------------------------------------------------------

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(LS_SESSION) || 'null');
    if (s && typeof s.token === 'string' && s.user && typeof s.user.id === 'string') return s;
  } catch {
    // a damaged entry is the same as none
  }
  return null;
}

function saveSession(s) {
  localStorage.setItem(LS_SESSION, JSON.stringify(s));
}

function expired(s) {
  const t = Date.parse(s.expiresAt || '');
  return Number.isFinite(t) && t <= Date.now();
}

// api calls that carry the token: a 401 ends the session.
async function authed(call) {
  if (!session) throw new Error('logged out');
  try {
    return await call(session.token);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      endSession('Your session has ended. Log in again.');
    }
    throw err;
  }
}

function endSession(reason) {
  if (!session) return;
  leaveChat();
  localStorage.removeItem(LS_SESSION);
  session = null;
  showAuth('login', reason);
}

// ---- Log in / register -------------------------------------------------------

let authMode = 'login';
let lockTimer = 0;
let lockUntil = 0;

function showAuth(mode, message = '') {
  ui.chatView.hidden = true;
  ui.authView.hidden = false;
  document.title = 'Aurora';
  setAuthMode(mode);
  setAuthError(message);
  ui.authPass.value = '';
  (ui.authUser.value ? ui.authPass : ui.authUser).focus();
}

function setAuthMode(mode) {
  authMode = mode;
  const reg = mode === 'register';
  ui.authSub.textContent = reg ? 'Create an account.' : 'Log in to start chatting.';
  ui.authSubmit.textContent = reg ? 'Create account' : 'Log in';
  ui.authSwitchText.textContent = reg ? 'Have an account?' : 'New here?';
  ui.authSwitch.textContent = reg ? 'Log in' : 'Create an account';
  ui.authPass.autocomplete = reg ? 'new-password' : 'current-password';
  ui.authHint.hidden = !reg;
  if (reg) {
    ui.authUser.setAttribute('aria-describedby', 'auth-hint auth-error');
  } else {
    ui.authUser.setAttribute('aria-describedby', 'auth-error');
  }
  setAuthError('');
}

function setAuthError(msg, field = null) {
  ui.authError.textContent = msg;
  for (const f of [ui.authUser, ui.authPass]) f.removeAttribute('aria-invalid');
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function lockLogin(seconds) {
  lockUntil = Date.now() + Math.max(1, seconds) * 1000;
  clearInterval(lockTimer);
  const tick = () => {
    const left = Math.ceil((lockUntil - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(lockTimer);
      ui.authSubmit.disabled = false;
      setAuthError('');
      return;
    }
    ui.authSubmit.disabled = true;
    ui.authError.textContent = `Too many failed attempts for this account. Try again in ${waitText(left)}.`;
  };
  tick();
  lockTimer = setInterval(tick, 1000);
}

function waitText(s) {
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const r = s % 60;
  return r ? `${m} min ${r} s` : `${m} min`;
}

function sentence(msg) {
  const s = String(msg || '').trim();
  if (!s) return 'Something went wrong.';
  const t = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(t) ? t : t + '.';
}

function authErrorText(err, during) {
  if (!(err instanceof ApiError)) return 'Something went wrong. Try again.';
  switch (err.status) {
    case 0: return err.message;
    case 409: return 'That username is taken. Pick another one.';
    case 401: return during === 'login' ? 'Wrong username or password.' : sentence(err.message);
    case 503: return 'The server is unavailable right now. Try again in a moment.';
    default: return sentence(err.message);
  }
}

async function onAuthSubmit(ev) {
  ev.preventDefault();
  if (ui.authSubmit.disabled) return;
  const username = ui.authUser.value.trim();
  const password = ui.authPass.value;
  if (!username) return setAuthError('Enter your username.', ui.authUser);
  if (!password) return setAuthError('Enter your password.', ui.authPass);
  if (authMode === 'register') {
    if (!USERNAME_RE.test(username)) {
      return setAuthError('Usernames are 3-32 characters of letters, digits, _ . and -.', ui.authUser);
    }
    const p = passwordProblem(password);
    if (p) return setAuthError(p, ui.authPass);
  }
  setAuthError('');
  ui.authSubmit.disabled = true;
  const label = ui.authSubmit.textContent;
  ui.authSubmit.textContent = authMode === 'register' ? 'Creating account…' : 'Logging in…';
  let during = authMode;
  try {
    if (authMode === 'register') {
      await api.register(username, password);
      during = 'login';
    }
    const res = await api.login(username, password);
    session = { token: res.token, expiresAt: res.expiresAt, user: res.user };
    saveSession(session);
    ui.authPass.value = '';
    enterChat();
  } catch (err) {
    if (err instanceof ApiError && err.status === 429) {
      ui.authSubmit.textContent = label;
      lockLogin(err.retryAfter || 60);
      return;
    }
    const field = err instanceof ApiError && err.status === 409 ? ui.authUser
      : err instanceof ApiError && err.status === 400 && /password/i.test(err.message) ? ui.authPass
        : err instanceof ApiError && err.status === 400 ? ui.authUser : null;
    setAuthError(authErrorText(err, during), field);
    if (during === 'login' && authMode === 'register') {
      // The account exists now; only the log in failed.
      setAuthMode('login');
      setAuthError(authErrorText(err, during));
    }
  } finally {
    if (Date.now() >= lockUntil) {
      ui.authSubmit.disabled = false;
      ui.authSubmit.textContent = authMode === 'register' ? 'Create account' : 'Log in';
    }
  }
}

// ---- Entering and leaving the chat ---------------------------------------------

function me() {
  return session.user;
}

function enterChat() {
  ui.authView.hidden = true;
  ui.chatView.hidden = false;
  ui.meName.textContent = me().username;
  ui.meAvatar.textContent = initial(me().username);
  ui.meAvatar.className = 'avatar ' + hue(me().id);

  rooms.clear();
  pending.clear();
  joinRequests.clear();
  roomOrder = loadRoomNames();
  for (const name of roomOrder) rooms.set(name, newRoom(name));
  const saved = localStorage.getItem(currentKey(me().id));
  current = saved && rooms.has(saved) ? saved : GENERAL;

  welcomed = false;
  everConnected = false;
  conn = new Connection(wsURL(), session.token, {
    onOpen, onFrame, onClose, onState,
  });
  conn.start();
  switchRoom(current, { focus: true });
}

function leaveChat() {
  stopTyping(false);
  if (conn) conn.stop();
  conn = null;
  welcomed = false;
  clearInterval(presencePoll);
  clearInterval(typingSweep);
  typingSweep = 0;
  clearInterval(lockTimer);
  rooms.clear();
  pending.clear();
  joinRequests.clear();
  ui.messages.replaceChildren();
  ui.memberList.replaceChildren();
  ui.roomList.replaceChildren();
  roomEls.clear();
  ui.typing.textContent = '';
  ui.banner.hidden = true;
  ui.input.value = '';
  closeDrawers();
}

function loadRoomNames() {
  let names = [];
  try {
    names = JSON.parse(localStorage.getItem(roomsKey(me().id)) || '[]');
  } catch {
    names = [];
  }
  if (!Array.isArray(names)) names = [];
  names = names.filter((n) => typeof n === 'string' && ROOM_RE.test(n) && n !== GENERAL);
  return [GENERAL, ...new Set(names)];
}

function saveRoomNames() {
  localStorage.setItem(roomsKey(me().id), JSON.stringify(roomOrder));
}

function wsURL() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws`;
}

// ---- Connection events -------------------------------------------------------

function onOpen() {
  welcomed = false; // the server speaks first
}

function onState(state, detail) {
  clearInterval(bannerTimer);
  const labels = { connecting: 'Connecting…', online: 'Online', reconnecting: 'Offline', stopped: 'Offline' };
  ui.connStatus.textContent = labels[state] || state;
  ui.connStatus.dataset.state = state === 'online' ? 'online' : state === 'connecting' ? 'connecting' : 'offline';
  if (state === 'reconnecting') {
    const what = everConnected ? 'Connection lost.' : 'Cannot reach the server.';
    const tick = () => {
      const s = Math.max(0, Math.ceil((detail.at - Date.now()) / 1000));
      ui.bannerText.textContent = s > 0 ? `${what} Reconnecting in ${s} s…` : `${what} Reconnecting…`;
    };
    tick();
    bannerTimer = setInterval(tick, 1000);
    ui.banner.hidden = false;
    ui.bannerRetry.hidden = false;
  } else if (state === 'connecting' && everConnected) {
    ui.bannerText.textContent = 'Reconnecting…';
    ui.bannerRetry.hidden = true;
    ui.banner.hidden = false;
  } else if (state === 'stopped') {
    ui.banner.hidden = true;
  }
  // "online" hides the banner only once the server said welcome.
  refreshPendingStatus();
}
let bannerTimer = 0;

function onClose(info) {
  welcomed = false;
  stopTyping(false); // the server forgot it with the connection
  joinRequests.clear(); // unanswered; the next welcome joins again
  for (const room of rooms.values()) {
    room.typing.clear();
  }
  renderTyping();
  refreshPendingStatus();
  if (info.code === CloseCode.TOKEN_EXPIRED) {
    endSession('Your session expired. Log in again.');
    return;
  }
  if (info.code === CloseCode.POLICY) {
    toast('The server closed the connection: ' + (info.reason || 'policy violation') + '.', true);
  }
  if (!info.opened && session) {
    // A refused upgrade looks like any network error to a page; ask the
    // API whether the token is still good.
    const s = session;
    api.me(s.token).catch((err) => {
      if (err instanceof ApiError && err.status === 401 && session === s) {
        endSession('Your session has ended. Log in again.');
      }
    });
  }
}

function onFrame(f) {
  switch (f.type) {
    case 'welcome': return onWelcome(f);
    case 'message': return onMessage(f);
    case 'ack': return onAck(f);
    case 'rate_limited': return onRateLimited(f);
    case 'error': return onErrorFrame(f);
    case 'joined': return onJoined(f);
    case 'left': return onLeft(f);
    case 'presence': return onPresence(f);
    case 'typing': return onTyping(f);
    case 'pong': return undefined;
    default: return undefined; // newer servers may send more
  }
}

function onWelcome() {
  welcomed = true;
  const wasReconnect = everConnected;
  everConnected = true;
  conn.welcomed();
  ui.banner.hidden = true;
  ui.banner.classList.remove('error');
  // Join (again) every room, asking for what was missed since the newest
  // message seen there; general was joined by the server already, but the
  // join brings its members and the replay.
  for (const name of roomOrder) sendJoin(name);
  // Then what was typed meanwhile, in order, with the original clientIds.
  for (const room of rooms.values()) {
    for (const msg of room.pending) {
      if (msg.state === 'pending') {
        msg.auto = true;
        transmit(msg);
      }
    }
  }
  if (wasReconnect) announce('Reconnected.');
}

function sendJoin(name) {
  const room = rooms.get(name);
  if (!room || !welcomed) return;
  const clientId = 'join-' + newClientId();
  joinRequests.set(clientId, name);
  const frame = { type: 'join', room: name, clientId };
  if (room.lastId && parseId(room.lastId)) frame.since = room.lastId;
  room.joinedWithSince = 'since' in frame;
  conn.send(frame);
}

function onJoined(f) {
  const room = rooms.get(f.room);
  if (!room) return;
  for (const [cid, name] of joinRequests) if (name === f.room) joinRequests.delete(cid);
  room.members = new Map();
  for (const m of f.members || []) {
    if (m && typeof m.userId === 'string') room.members.set(m.userId, String(m.username || ''));
  }
  room.presenceSeq++;
  if (f.room === current) {
    renderMembers();
    // The server coalesces presence events over a short window and drops a
    // user's online+offline pair in one window, although this snapshot may
    // hold that user: look again once the window has passed.
    clearTimeout(room.settleTimer);
    room.settleTimer = setTimeout(() => refreshMembers(room), PRESENCE_SETTLE_MS);
  }
  if (room.joinedWithSince && f.recovered !== false) return; // the replay follows
  // Without a complete replay, messages sent between our last look at the
  // history and this join would be missing: fetch what came after the
  // newest we have (or the history page in flight, once it lands).
  if (room.loading) {
    room.resync = true;
  } else if (room.historyLoaded || f.recovered === false) {
    catchUp(room);
  } else if (f.room === current) {
    loadLatest(room);
  }
}

function onLeft(f) {
  if (rooms.has(f.room) && f.room !== GENERAL) removeRoom(f.room);
}

function onMessage(f) {
  const room = rooms.get(f.room);
  if (!room || typeof f.text !== 'string') return;
  const msg = addMessage(room, f, { live: true });
  // Whoever sent a message stopped typing it.
  if (msg && room.typing.delete(msg.userId) && f.room === current) renderTyping();
}

function onAck(f) {
  const msg = pending.get(f.clientId);
  if (!msg || typeof f.id !== 'string') return;
  confirm(msg, f.id, typeof f.ts === 'number' ? f.ts : msg.ts);
}

function onRateLimited(f) {
  const msg = pending.get(f.clientId);
  const wait = Math.max(1, Number(f.retryAfterMs) || 1000);
  if (!msg) {
    toast(`You are sending too fast. Wait ${waitText(Math.ceil(wait / 1000))}.`, true);
    return;
  }
  if (msg.auto && msg.autoRetries < AUTO_RETRIES) {
    // A resend after a reconnect: the burst was ours, not the user's.
    msg.autoRetries++;
    setTimeout(() => {
      if (pending.get(msg.clientId) === msg && msg.state === 'pending') transmit(msg);
    }, wait);
    return;
  }
  fail(msg, `Not sent: you are sending too fast. Wait ${waitText(Math.ceil(wait / 1000))} and retry.`);
}

function onErrorFrame(f) {
  const text = sentence(f.message || f.code);
  if (f.clientId && pending.has(f.clientId)) {
    fail(pending.get(f.clientId), 'Not sent: ' + text);
    return;
  }
  if (f.clientId && joinRequests.has(f.clientId)) {
    const name = joinRequests.get(f.clientId);
    joinRequests.delete(f.clientId);
    toast(`Cannot join #${name}: ${text}`, true);
    if ((f.code === 'invalid_room' || f.code === 'too_many_rooms') && name !== GENERAL) removeRoom(name);
    return;
  }
  toast(text, true);
}

function onPresence(f) {
  const room = rooms.get(f.room);
  if (!room || typeof f.userId !== 'string') return;
  room.presenceSeq++;
  if (f.status === 'online') {
    room.members.set(f.userId, String(f.user || ''));
  } else if (f.status === 'offline') {
    room.members.delete(f.userId);
    room.typing.delete(f.userId);
  }
  if (f.room === current) {
    renderMembers();
    renderTyping();
  }
}

function onTyping(f) {
  const room = rooms.get(f.room);
  if (!room || typeof f.userId !== 'string' || f.userId === me().id) return;
  if (f.isTyping) {
    room.typing.set(f.userId, { user: String(f.user || 'Someone'), until: Date.now() + TYPING_EXPIRE_MS });
    if (!typingSweep) typingSweep = setInterval(sweepTyping, 1000);
  } else {
    room.typing.delete(f.userId);
  }
  if (f.room === current) renderTyping();
}

let typingSweep = 0;
function sweepTyping() {
  const now = Date.now();
  let any = false;
  let changed = false;
  for (const room of rooms.values()) {
    for (const [uid, t] of room.typing) {
      if (t.until <= now) {
        room.typing.delete(uid);
        if (room.name === current) changed = true;
      } else {
        any = true;
      }
    }
  }
  if (changed) renderTyping();
  if (!any) {
    clearInterval(typingSweep);
    typingSweep = 0;
  }
}

// ---- Messages ------------------------------------------------------------------

// addMessage records a message frame and shows it; it returns the message,
// or null for one already shown.
function addMessage(room, f, { live }) {
  let id = typeof f.id === 'string' && parseId(f.id) ? f.id : null;
  const ts = typeof f.ts === 'number' ? f.ts : (parseId(id) || [Date.now()])[0];
  let synthetic = false;
  if (!id) {
    // AuroraChat's own payloads carry no id: order them by time.
    id = `${ts}-${900000000 + syntheticSeq++}`;
    synthetic = true;
  }
  if (room.msgs.has(id)) return null;
  const own = f.userId === me().id;
  const mine = own && f.clientId ? pending.get(f.clientId) : null;
  if (mine && mine.room === room.name) {
    // Our pending message, echoed before its ack.
    confirm(mine, id, ts);
    return mine;
  }
  const msg = {
    id, synthetic, room: room.name, user: String(f.user || 'unknown'), userId: String(f.userId || ''),
    text: f.text, ts, clientId: f.clientId || '', state: 'sent', el: null,
  };
  insertConfirmed(room, msg);
  if (live) {
    if (room.name === current) {
      if (!own) announce(`${msg.user}: ${msg.text.slice(0, 200)}`);
    } else if (!own) {
      room.unread++;
      renderRooms();
    }
  }
  return msg;
}

function noteId(room, id) {
  if (!room.lastId || compareIds(id, room.lastId) > 0) room.lastId = id;
}

// insertConfirmed puts a message with an id into the room's order and, for
// the room on screen, into the list at its place.
function insertConfirmed(room, msg) {
  room.msgs.set(msg.id, msg);
  const idx = sortedIndex(room.order, msg.id);
  room.order.splice(idx, 0, msg.id);
  if (!msg.synthetic) noteId(room, msg.id);
  if (room.name !== current) return;
  const stick = pinned || (msg.userId === me().id && msg.state === 'sent' && idx === room.order.length - 1);
  placeEl(room, msg, idx);
  afterInsert(stick, idx === room.order.length - 1);
}

function sortedIndex(order, id) {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareIds(order[mid], id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// placeEl (re)inserts msg's element before the element of the next message,
// before our pending ones, or at the end; and fixes the grouping around it.
function placeEl(room, msg, idx) {
  const li = msg.el || buildMsgEl(msg);
  const oldNext = li.parentNode ? li.nextElementSibling : null;
  let next = null;
  if (idx + 1 < room.order.length) next = room.msgs.get(room.order[idx + 1]).el;
  else if (room.pending.length) next = room.pending.find((p) => p !== msg && p.el)?.el || null;
  if (next && next.parentNode !== ui.messages) next = null; // cannot happen; never throw for it
  if (li.nextElementSibling !== next || !li.parentNode) ui.messages.insertBefore(li, next);
  regroup(li);
  if (next) regroup(next);
  if (oldNext && oldNext !== next) regroup(oldNext);
}

function afterInsert(stick, atEnd) {
  if (stick) {
    scrollToBottom();
  } else if (atEnd) {
    ui.pill.hidden = false;
  }
}

// regroup hides the author line of a message that follows one of the same
// author shortly before.
function regroup(li) {
  const prev = li.previousElementSibling;
  const cont = !!prev && prev.dataset.userId === li.dataset.userId
    && Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_GAP_MS
    && new Date(Number(li.dataset.ts)).toDateString() === new Date(Number(prev.dataset.ts)).toDateString();
  li.classList.toggle('cont', cont);
}

function buildMsgEl(msg) {
  const li = document.createElement('li');
  li.className = 'msg';
  li.dataset.userId = msg.userId;
  const av = document.createElement('span');
  av.className = 'avatar ' + hue(msg.userId || msg.user);
  av.setAttribute('aria-hidden', 'true');
  av.textContent = initial(msg.user);
  const head = document.createElement('div');
  head.className = 'msg-head';
  const author = document.createElement('span');
  author.className = 'author';
  author.textContent = msg.user;
  const time = document.createElement('time');
  time.className = 'msg-time';
  head.append(author, time);
  const body = document.createElement('div');
  body.className = 'msg-body';
  renderText(body, msg.text);
  const status = document.createElement('div');
  status.className = 'msg-status';
  li.append(av, head, body, status);
  msg.el = li;
  updateMsgEl(msg);
  return li;
}

function updateMsgEl(msg) {
  const li = msg.el;
  if (!li) return;
  if (msg.id && !msg.synthetic) li.dataset.id = msg.id;
  else delete li.dataset.id;
  if (msg.clientId) li.dataset.clientId = msg.clientId;
  li.dataset.ts = String(msg.ts);
  li.classList.toggle('own', msg.userId === me().id);
  li.classList.toggle('pending', msg.state === 'pending');
  li.classList.toggle('failed', msg.state === 'failed');
  const time = li.querySelector('.msg-time');
  time.dateTime = new Date(msg.ts).toISOString();
  time.textContent = formatTime(msg.ts);
  time.title = formatFull(msg.ts);
  const status = li.querySelector('.msg-status');
  status.replaceChildren();
  if (msg.state === 'pending') {
    status.textContent = welcomed ? 'Sending…' : 'Waiting for the connection…';
  } else if (msg.state === 'failed') {
    const why = document.createElement('span');
    why.textContent = msg.error;
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'btn retry';
    retry.textContent = 'Retry';
    retry.addEventListener('click', () => {
      msg.auto = false;
      transmit(msg);
      ui.input.focus();
    });
    const discard = document.createElement('button');
    discard.type = 'button';
    discard.className = 'btn subtle discard';
    discard.textContent = 'Discard';
    discard.addEventListener('click', () => discardPending(msg));
    status.append(why, retry, discard);
  }
}

function refreshPendingStatus() {
  for (const msg of pending.values()) if (msg.state === 'pending') updateMsgEl(msg);
}

function sendMessage(text) {
  const room = rooms.get(current);
  if (!room) return;
  const msg = {
    id: null, synthetic: false, room: room.name, user: me().username, userId: me().id, text,
    ts: Date.now(), clientId: newClientId(), state: 'pending', el: null, auto: false, autoRetries: 0, error: '',
  };
  room.pending.push(msg);
  pending.set(msg.clientId, msg);
  ui.messages.append(buildMsgEl(msg));
  regroup(msg.el);
  scrollToBottom();
  transmit(msg);
}

// transmit (re)sends a pending message; without a greeted connection it
// waits for the next welcome.
function transmit(msg) {
  msg.state = 'pending';
  msg.error = '';
  if (welcomed) {
    conn.send({ type: 'message', room: msg.room, text: msg.text, clientId: msg.clientId });
  }
  updateMsgEl(msg);
}

function fail(msg, why) {
  msg.state = 'failed';
  msg.error = why;
  updateMsgEl(msg);
}

// confirm turns our pending message into the message with id.
function confirm(msg, id, ts) {
  const room = rooms.get(msg.room);
  pending.delete(msg.clientId);
  if (!room) return;
  room.pending = room.pending.filter((p) => p !== msg);
  if (room.msgs.has(id)) {
    // Shown already (the echo or a replay came first): drop the copy.
    if (msg.el) {
      const next = msg.el.nextElementSibling;
      msg.el.remove();
      if (next) regroup(next);
    }
    return;
  }
  msg.id = id;
  msg.ts = ts;
  msg.state = 'sent';
  msg.auto = false;
  updateMsgEl(msg);
  insertConfirmed(room, msg);
}

function discardPending(msg) {
  const room = rooms.get(msg.room);
  pending.delete(msg.clientId);
  if (room) room.pending = room.pending.filter((p) => p !== msg);
  if (msg.el) {
    const next = msg.el.nextElementSibling;
    msg.el.remove();
    if (next) regroup(next);
  }
  ui.input.focus();
}

// ---- History -------------------------------------------------------------------

async function loadLatest(room) {
  const gen = ++room.historyGen;
  room.loading = true;
  renderHistoryStatus();
  try {
    const res = await authed((t) => api.history(t, room.name, { limit: PAGE }));
    if (gen !== room.historyGen || rooms.get(room.name) !== room) return;
    const first = !room.historyLoaded;
    const stick = first || pinned;
    for (const f of res.messages || []) addMessage(room, f, { live: false });
    room.historyLoaded = true;
    if (first) room.hasMore = !!res.hasMore;
    if (room.name === current && stick) scrollToBottom();
  } catch (err) {
    if (gen === room.historyGen && room.name === current && !(err instanceof ApiError && err.status === 401)) {
      toast('Could not load the history of #' + room.name + ': ' + errText(err), true);
    }
  } finally {
    finishLoad(room, gen);
  }
  if (room.name === current && !room.loading) fillViewport(room);
}

async function loadOlder(room) {
  if (room.loading || !room.hasMore || !room.historyLoaded) return;
  const oldest = room.order.find((id) => !room.msgs.get(id).synthetic);
  if (!oldest) return;
  const gen = room.historyGen;
  room.loading = true;
  renderHistoryStatus();
  try {
    const res = await authed((t) => api.history(t, room.name, { before: oldest, limit: PAGE }));
    if (gen !== room.historyGen || rooms.get(room.name) !== room) return;
    const sc = ui.scroller;
    const keep = room.name === current ? sc.scrollHeight - sc.scrollTop : 0;
    for (const f of res.messages || []) addMessage(room, f, { live: false });
    room.hasMore = !!res.hasMore;
    // Keep what the user was reading where it was.
    if (room.name === current) sc.scrollTop = sc.scrollHeight - keep;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      toast('Could not load older messages: ' + errText(err), true);
    }
  } finally {
    finishLoad(room, gen);
  }
  if (room.name === current && !room.loading) fillViewport(room);
}

// finishLoad ends a history request of generation gen, and starts the catch
// up a join asked for meanwhile.
function finishLoad(room, gen) {
  if (gen === room.historyGen) {
    room.loading = false;
    if (room.resync && rooms.get(room.name) === room) {
      room.resync = false;
      catchUp(room);
    }
  }
  renderHistoryStatus();
}

// fillViewport loads older pages while the list does not fill the screen,
// since then no scroll can ask for them.
function fillViewport(room) {
  const sc = ui.scroller;
  if (room.hasMore && !room.loading && sc.scrollHeight <= sc.clientHeight + LOAD_OLDER_PX) {
    loadOlder(room);
  }
}

// catchUp fetches what came after the newest message we have, when the
// server's replay was incomplete; far behind, the room starts over.
async function catchUp(room) {
  if (!room.lastId) {
    loadLatest(room);
    return;
  }
  const gen = ++room.historyGen;
  room.loading = true;
  try {
    let after = room.lastId;
    for (let i = 0; i < CATCH_UP_PAGES; i++) {
      const res = await authed((t) => api.history(t, room.name, { after, limit: CATCH_UP_PAGE }));
      if (gen !== room.historyGen || rooms.get(room.name) !== room) return;
      const list = res.messages || [];
      for (const f of list) addMessage(room, f, { live: true });
      if (!res.hasMore || !list.length) return;
      after = list[list.length - 1].id;
    }
    resetRoom(room);
    loadLatest(room); // a new generation: this one's finishLoad is a no-op
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      toast('Could not fetch missed messages of #' + room.name + ': ' + errText(err), true);
    }
  } finally {
    finishLoad(room, gen);
  }
}

function resetRoom(room) {
  room.msgs.clear();
  room.order = [];
  room.lastId = null;
  room.historyLoaded = false;
  room.hasMore = false;
  if (room.name === current) renderMessages();
}

function errText(err) {
  if (err instanceof ApiError) return err.status === 0 ? 'the server cannot be reached.' : sentence(err.message);
  return 'unexpected error.';
}

// ---- Rooms -----------------------------------------------------------------------

function switchRoom(name, { focus = false } = {}) {
  if (!rooms.has(name)) return;
  const changed = name !== current;
  if (changed) stopTyping(true);
  current = name;
  localStorage.setItem(currentKey(me().id), name);
  const room = rooms.get(name);
  room.unread = 0;
  ui.roomTitle.textContent = name;
  ui.composerLabel.textContent = `Message #${name}`;
  ui.input.placeholder = `Message #${name}`;
  renderRooms();
  renderMessages();
  renderMembers();
  renderTyping();
  ui.pill.hidden = true;
  scrollToBottom();
  if (!room.historyLoaded && !room.loading) loadLatest(room);
  if (changed && welcomed) refreshMembers(room); // its joined snapshot may have aged
  setupPresencePoll();
  closeDrawers();
  if (focus) ui.input.focus();
}

function addRoom(name) {
  if (!rooms.has(name)) {
    rooms.set(name, newRoom(name));
    roomOrder.push(name);
    saveRoomNames();
    sendJoin(name);
  }
  switchRoom(name, { focus: true });
}

function removeRoom(name) {
  if (name === GENERAL || !rooms.has(name)) return;
  const room = rooms.get(name);
  for (const msg of room.pending) pending.delete(msg.clientId);
  rooms.delete(name);
  roomOrder = roomOrder.filter((n) => n !== name);
  saveRoomNames();
  if (current === name) switchRoom(GENERAL);
  else renderRooms();
}

function leaveRoom(name) {
  if (name === GENERAL) return;
  if (welcomed) conn.send({ type: 'leave', room: name });
  removeRoom(name);
  announce(`Left #${name}.`);
}

const roomEls = new Map(); // name -> {li, btn, unread}

function renderRooms() {
  for (const [name, r] of roomEls) {
    if (!rooms.has(name)) {
      r.li.remove();
      roomEls.delete(name);
    }
  }
  let total = 0;
  let prev = null;
  for (const name of roomOrder) {
    const room = rooms.get(name);
    let r = roomEls.get(name);
    if (!r) {
      r = buildRoomEl(name);
      roomEls.set(name, r);
    }
    const expected = prev ? prev.nextElementSibling : ui.roomList.firstElementChild;
    if (expected !== r.li) ui.roomList.insertBefore(r.li, expected);
    prev = r.li;
    const isCurrent = name === current;
    r.li.classList.toggle('current', isCurrent);
    r.li.classList.toggle('unread', room.unread > 0);
    if (isCurrent) r.btn.setAttribute('aria-current', 'page');
    else r.btn.removeAttribute('aria-current');
    r.unread.hidden = room.unread === 0;
    r.unread.textContent = room.unread > 99 ? '99+' : String(room.unread);
    r.btn.setAttribute('aria-label', room.unread ? `#${name}, ${room.unread} unread` : `#${name}`);
    total += room.unread;
  }
  ui.unreadBadge.hidden = total === 0;
  ui.unreadBadge.textContent = total > 99 ? '99+' : String(total);
  document.title = (total ? `(${total}) ` : '') + `#${current} · Aurora`;
}

function buildRoomEl(name) {
  const li = document.createElement('li');
  li.className = 'room';
  li.dataset.room = name;
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'room-btn';
  const hash = document.createElement('span');
  hash.className = 'room-hash';
  hash.setAttribute('aria-hidden', 'true');
  hash.textContent = '#';
  const label = document.createElement('span');
  label.className = 'room-name';
  label.textContent = name;
  const unread = document.createElement('span');
  unread.className = 'room-unread';
  unread.setAttribute('aria-hidden', 'true');
  btn.append(hash, label, unread);
  btn.addEventListener('click', () => switchRoom(name, { focus: true }));
  li.append(btn);
  if (name !== GENERAL) {
    const leave = document.createElement('button');
    leave.type = 'button';
    leave.className = 'room-leave';
    leave.setAttribute('aria-label', `Leave #${name}`);
    leave.title = `Leave #${name}`;
    leave.textContent = '×';
    leave.addEventListener('click', () => leaveRoom(name));
    li.append(leave);
  }
  return { li, btn, unread };
}

function onJoinSubmit(ev) {
  ev.preventDefault();
  const name = ui.joinRoom.value.trim().replace(/^#/, '').toLowerCase();
  if (!ROOM_RE.test(name)) {
    ui.joinError.textContent = name
      ? 'Room names are 1-64 characters of a-z, 0-9, _ and -.'
      : 'Enter a room name.';
    ui.joinRoom.setAttribute('aria-invalid', 'true');
    ui.joinRoom.focus();
    return;
  }
  ui.joinError.textContent = '';
  ui.joinRoom.removeAttribute('aria-invalid');
  ui.joinRoom.value = '';
  addRoom(name);
}

// ---- Rendering ---------------------------------------------------------------------

function renderMessages() {
  const room = rooms.get(current);
  ui.messages.replaceChildren();
  if (!room) return;
  const frag = document.createDocumentFragment();
  for (const id of room.order) {
    const msg = room.msgs.get(id);
    frag.append(msg.el || buildMsgEl(msg));
  }
  for (const msg of room.pending) frag.append(msg.el || buildMsgEl(msg));
  ui.messages.append(frag);
  for (const li of ui.messages.children) regroup(li);
  renderHistoryStatus();
}

function renderHistoryStatus() {
  const room = rooms.get(current);
  ui.historyStatus.replaceChildren();
  if (!room) return;
  if (room.loading) {
    ui.historyStatus.textContent = 'Loading…';
  } else if (room.historyLoaded && room.hasMore) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn subtle';
    b.textContent = 'Load older messages';
    b.addEventListener('click', () => loadOlder(room));
    ui.historyStatus.append(b);
  } else if (room.historyLoaded) {
    ui.historyStatus.textContent = `This is the beginning of #${room.name}.`;
  }
}

function renderMembers() {
  const room = rooms.get(current);
  ui.memberList.replaceChildren();
  if (!room) return;
  const list = [...room.members].sort((a, b) => a[1].localeCompare(b[1]));
  for (const [uid, name] of list) {
    const li = document.createElement('li');
    li.className = 'member' + (uid === me().id ? ' me-member' : '');
    li.dataset.userId = uid;
    const av = document.createElement('span');
    av.className = 'avatar small ' + hue(uid);
    av.setAttribute('aria-hidden', 'true');
    av.textContent = initial(name);
    const n = document.createElement('span');
    n.className = 'member-name';
    n.textContent = name;
    const dot = document.createElement('span');
    dot.className = 'member-status';
    dot.setAttribute('aria-hidden', 'true');
    li.append(av, n, dot);
    ui.memberList.append(li);
  }
  ui.memberCount.textContent = String(list.length);
  ui.membersToggleCount.textContent = `(${list.length})`;
  setupPresencePoll();
}

function renderTyping() {
  const room = rooms.get(current);
  const names = room ? [...room.typing.values()].map((t) => t.user) : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  if (ui.typing.textContent !== text) ui.typing.textContent = text;
}

let presencePoll = 0;
let presencePollRoom = '';
// setupPresencePoll polls the members of a big current room: the server
// stops publishing presence events above a size.
function setupPresencePoll() {
  const room = rooms.get(current);
  const want = room && room.members.size >= BIG_ROOM ? room.name : '';
  if (want === presencePollRoom) return;
  clearInterval(presencePoll);
  presencePollRoom = want;
  if (!want) return;
  presencePoll = setInterval(() => {
    const r = rooms.get(want);
    if (r && current === want && !document.hidden) refreshMembers(r);
  }, PRESENCE_POLL_MS);
}

// refreshMembers replaces a room's member list with the server's. The
// answer is dropped when a presence frame arrived meanwhile: it may be older.
async function refreshMembers(room) {
  const seq = room.presenceSeq;
  try {
    const res = await authed((t) => api.presence(t, room.name));
    if (rooms.get(room.name) !== room || room.presenceSeq !== seq) return;
    room.members = new Map((res.members || [])
      .filter((m) => m && typeof m.userId === 'string')
      .map((m) => [m.userId, String(m.username || '')]));
    if (room.name === current) renderMembers();
  } catch {
    // frames keep the list current; the next refresh tries again
  }
}

function atBottom() {
  const sc = ui.scroller;
  return sc.scrollHeight - sc.scrollTop - sc.clientHeight <= AT_BOTTOM_PX;
}

// pinned: the reader is at the bottom of the list and follows it. Only a
// move of the scroll position changes it (the reader scrolling, or our own
// scrollToBottom); a change of layout alone (a resize rewrapping the text,
// the composer growing) moves the bottom, not the reader. So after one a
// pinned list is put back at its bottom, and an unpinned one keeps the
// message the reader was at where it was on screen.
let pinned = true;
let lastScrollTop = 0;
let reading = null; // unpinned: {el, top}, the first message in view and its offset

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  lastScrollTop = ui.scroller.scrollTop;
  pinned = true;
  ui.pill.hidden = true;
}

function onScroll() {
  const sc = ui.scroller;
  if (sc.scrollTop !== lastScrollTop) {
    lastScrollTop = sc.scrollTop;
    pinned = atBottom();
    noteReading();
  }
  if (atBottom()) ui.pill.hidden = true;
  const room = rooms.get(current);
  if (room && sc.scrollTop < LOAD_OLDER_PX) loadOlder(room);
}

// noteReading remembers, for an unpinned list, the first message that
// starts in view (or, when none does, the one filling the view).
function noteReading() {
  reading = null;
  if (pinned) return;
  const view = ui.scroller.getBoundingClientRect();
  const items = ui.messages.children;
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].getBoundingClientRect().top < view.top - 1) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && (lo === items.length || items[lo].getBoundingClientRect().top >= view.bottom)) lo--;
  if (lo < items.length) reading = { el: items[lo], top: items[lo].getBoundingClientRect().top - view.top };
}

// followResize runs whenever the size of the scroller or of what it holds
// changes (a window resize, a rotated phone, text rewrapped at a new width,
// the composer or the banner growing): a pinned list goes back to its
// bottom, an unpinned one puts the message the reader was at back where it
// was on screen.
function followResize() {
  if (ui.chatView.hidden) return;
  if (pinned) {
    scrollToBottom();
    return;
  }
  if (!reading || !reading.el.isConnected) return;
  const sc = ui.scroller;
  const shift = reading.el.getBoundingClientRect().top - sc.getBoundingClientRect().top - reading.top;
  if (Math.abs(shift) < 1) return;
  sc.scrollTop += shift;
  lastScrollTop = sc.scrollTop;
}

function announce(text) {
  ui.announcer.textContent = '';
  // A separate task, so the same text twice is announced twice.
  setTimeout(() => { ui.announcer.textContent = text; }, 50);
}

function toast(text, isError = false) {
  const t = document.createElement('div');
  t.className = 'toast' + (isError ? ' error' : '');
  t.textContent = text;
  ui.toasts.append(t);
  setTimeout(() => t.remove(), 6000);
  while (ui.toasts.children.length > 4) ui.toasts.firstElementChild.remove();
}

// ---- Composer --------------------------------------------------------------------

let typingRoom = '';
let typingSentAt = 0;
let typingIdle = 0;

function onInput() {
  autosize();
  updateCounter();
  const text = ui.input.value;
  if (!text.trim()) {
    stopTyping(true);
    return;
  }
  const now = Date.now();
  if (typingRoom !== current || now - typingSentAt >= TYPING_SEND_EVERY_MS) {
    if (typingRoom && typingRoom !== current) stopTyping(true);
    if (welcomed && conn.send({ type: 'typing', room: current, isTyping: true })) {
      typingRoom = current;
      typingSentAt = now;
    }
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(() => stopTyping(true), TYPING_IDLE_MS);
}

function stopTyping(tell) {
  clearTimeout(typingIdle);
  if (typingRoom && tell && welcomed && conn) {
    conn.send({ type: 'typing', room: typingRoom, isTyping: false });
  }
  typingRoom = '';
  typingSentAt = 0;
}

function autosize() {
  const ta = ui.input;
  ta.style.height = 'auto';
  ta.style.height = Math.min(ta.scrollHeight, Math.round(window.innerHeight * 0.4)) + 'px';
}

function updateCounter() {
  const n = textLength(ui.input.value);
  const over = n > MAX_TEXT;
  if (n >= COUNTER_FROM) {
    ui.counter.textContent = over ? `${n - MAX_TEXT} over the limit` : `${MAX_TEXT - n} left`;
  } else {
    ui.counter.textContent = '';
  }
  ui.counter.classList.toggle('warn', n >= COUNTER_FROM && !over);
  ui.counter.classList.toggle('over', over);
  ui.send.disabled = over;
}

function onComposerSubmit(ev) {
  ev.preventDefault();
  // Surrounding blank lines and spaces carry nothing.
  const text = ui.input.value.trim();
  if (!text || textLength(text) > MAX_TEXT) return;
  stopTyping(true);
  ui.input.value = '';
  autosize();
  updateCounter();
  sendMessage(text);
}

function onComposerKey(ev) {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
    ev.preventDefault();
    ui.composer.requestSubmit();
  }
}

// ---- Drawers and keyboard ----------------------------------------------------------

function openDrawer(panel, toggle) {
  closeDrawers();
  panel.classList.add('open');
  toggle.setAttribute('aria-expanded', 'true');
  ui.scrim.hidden = false;
  const first = panel.querySelector('button, input, [tabindex]');
  if (first) first.focus();
}

function closeDrawers() {
  let was = null;
  for (const [panel, toggle] of [[ui.sidebar, ui.sidebarToggle], [ui.membersPanel, ui.membersToggle]]) {
    if (panel.classList.contains('open')) was = toggle;
    panel.classList.remove('open');
    toggle.setAttribute('aria-expanded', 'false');
  }
  ui.scrim.hidden = true;
  return was;
}

function onGlobalKey(ev) {
  if (ui.chatView.hidden) return;
  if (ev.key === 'Escape') {
    const toggle = closeDrawers();
    if (toggle) {
      toggle.focus();
      ev.preventDefault();
    }
    return;
  }
  if (ev.altKey && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
    ev.preventDefault();
    const i = roomOrder.indexOf(current);
    const j = (i + (ev.key === 'ArrowUp' ? -1 : 1) + roomOrder.length) % roomOrder.length;
    switchRoom(roomOrder[j], { focus: true });
  }
}

// ---- Start -----------------------------------------------------------------------

function wire() {
  ui.authForm.addEventListener('submit', onAuthSubmit);
  ui.authSwitch.addEventListener('click', () => {
    setAuthMode(authMode === 'login' ? 'register' : 'login');
    ui.authUser.focus();
  });
  ui.joinForm.addEventListener('submit', onJoinSubmit);
  ui.joinRoom.addEventListener('input', () => {
    ui.joinError.textContent = '';
    ui.joinRoom.removeAttribute('aria-invalid');
  });
  ui.logout.addEventListener('click', () => {
    const s = session;
    endSession('');
    if (s) ui.authUser.value = s.user.username;
    ui.authPass.focus();
  });
  ui.composer.addEventListener('submit', onComposerSubmit);
  ui.input.addEventListener('keydown', onComposerKey);
  ui.input.addEventListener('input', onInput);
  ui.scroller.addEventListener('scroll', onScroll, { passive: true });
  const resized = new ResizeObserver(followResize);
  for (const el of [ui.scroller, ui.historyStatus, ui.messages]) resized.observe(el);
  ui.pill.addEventListener('click', () => {
    scrollToBottom();
    ui.input.focus();
  });
  ui.bannerRetry.addEventListener('click', () => conn && conn.retryNow());
  ui.sidebarToggle.addEventListener('click', () => openDrawer(ui.sidebar, ui.sidebarToggle));
  ui.sidebarClose.addEventListener('click', () => {
    closeDrawers();
    ui.sidebarToggle.focus();
  });
  ui.membersToggle.addEventListener('click', () => openDrawer(ui.membersPanel, ui.membersToggle));
  ui.membersClose.addEventListener('click', () => {
    closeDrawers();
    ui.membersToggle.focus();
  });
  ui.scrim.addEventListener('click', closeDrawers);
  document.addEventListener('keydown', onGlobalKey);
  window.addEventListener('storage', (ev) => {
    // Logged out in another tab: follow.
    if (ev.key === LS_SESSION && !ev.newValue && session) endSession('You logged out in another tab.');
  });
}

async function start() {
  wire();
  const s = loadSession();
  if (!s || expired(s)) {
    if (s) localStorage.removeItem(LS_SESSION);
    showAuth('login', s ? 'Your session expired. Log in again.' : '');
    return;
  }
  try {
    await api.me(s.token);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      localStorage.removeItem(LS_SESSION);
      ui.authUser.value = s.user.username;
      showAuth('login', 'Your session has ended. Log in again.');
      return;
    }
    // Server unreachable: open the chat anyway; the connection retries.
  }
  session = s;
  enterChat();
}

start();
