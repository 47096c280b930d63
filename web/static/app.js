// Aurora's web client: log in, chat in rooms, see who is online and typing;
// create, find and join rooms, invite people, talk in direct rooms, and
// moderate; edit, delete, reply to and react to messages, mention people,
// keep unread counts in step with the other tabs, search, and attach files.
// Vanilla JS modules, no build step; docs/web.md describes the behaviour,
// rooms.js holds the rules of rooms and people.
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
  attachmentPath, compareIds, formatFull, formatSize, formatTime, hue, initial, isPreviewable,
  markedParts, MAX_TEXT, mentionAt, newClientId, parseId, passwordProblem, REACTIONS, renderText,
  ROOM_RE, textLength, USERNAME_RE,
} from './text.js';
import {
  canDeleteRoom, canManageRoom, canSend, eventText, httpRefusal, inviteFrom, inviteRoom,
  inviteToken, inviteURL, isDirectName, memberActions, refusalText, removedText, rfc3339After,
  ROLE_LABEL, roomLabel,
} from './rooms.js';

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
const PICKER_DEBOUNCE_MS = 250;
const ROSTER_DEBOUNCE_MS = 300; // membership events come in bursts
const SYNC_TIMEOUT_MS = 5000; // the room list before joining, at most this long
const OFFLINE_SHOWN = 500; // larger rooms list only who is online
const READ_EVERY_MS = 500; // read markers: at most one frame per this
const JUMP_PAGES = 40; // a search result is looked for this many pages back
const SEARCH_PAGE = 20;
const MENTION_CHOICES = 8;
const QUOTE_CHARS = 140;
const PREVIEW_CACHE = 60; // image previews kept as data: URLs
const BADGE_CAP = 1000; // the server counts unread messages up to this

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
  dmList: $('dm-list'),
  invitesSection: $('invites-section'),
  invitesList: $('invites-list'),
  browseBtn: $('browse-btn'),
  createRoomBtn: $('create-room-btn'),
  newDmBtn: $('new-dm-btn'),
  roomTopic: $('room-topic'),
  inviteBtn: $('invite-btn'),
  settingsBtn: $('settings-btn'),
  offlineTitle: $('offline-title'),
  offlineCount: $('offline-count'),
  offlineList: $('offline-list'),
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
  main: $('main'),
  dropZone: $('drop-zone'),
  dropText: $('drop-text'),
  mentionList: $('mention-list'),
  replyBar: $('reply-bar'),
  replyText: $('reply-text'),
  replyCancel: $('reply-cancel'),
  uploads: $('uploads'),
  attachBtn: $('attach-btn'),
  fileInput: $('file-input'),
  searchForm: $('search-form'),
  searchQ: $('search-q'),
  reactPicker: $('react-picker'),
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
    mentions: 0, // unread messages that mention us
    readSent: '', // the newest id we reported read here
    readMarker: '', // our read marker as the server last said (any tab)
    peerRead: '', // direct rooms: the other member's read marker ("seen")
    lifeSeen: new Set(), // ids of life events applied, so a replay applies none twice
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
    // What the server says of the room and of us in it.
    info: { type: isDirectName(name) ? 'direct' : 'public', title: '', topic: '', role: '', peer: null },
    serverAdmin: false,
    roster: null, // userId -> {userId, username, role, mutedUntil}; null until loaded
    rosterGen: 0,
    rosterTimer: 0,
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
  acceptInviteFromURL();
}

function leaveChat() {
  stopTyping(false);
  endEdit();
  setReply(null);
  clearUploads();
  closeMentions();
  closePicker();
  lifeRequests.clear();
  previews.clear();
  lookingAt = '';
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
  ui.dmList.replaceChildren();
  ui.invitesList.replaceChildren();
  ui.invitesSection.hidden = true;
  ui.offlineList.replaceChildren();
  memberEls.clear();
  roomEls.clear();
  closeDialogs();
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
  greetSeq++;
  stopTyping(false); // the server forgot it with the connection
  joinRequests.clear(); // unanswered; the next welcome joins again
  failLifeRequests();
  for (const room of rooms.values()) {
    room.typing.clear();
  }
  renderTyping();
  refreshPendingStatus();
  if (info.code === CloseCode.TOKEN_EXPIRED) {
    endSession('Your session expired. Log in again.');
    return;
  }
  if (info.code === CloseCode.REVOKED) {
    endSession('An administrator ended your session. Log in again.');
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
    case 'room_event': return onRoomEvent(f);
    case 'removed': return onRemoved(f);
    case 'rooms_changed': return refreshPeople();
    case 'edited': return onEdited(f);
    case 'deleted': return onDeleted(f);
    case 'reaction': return onReaction(f);
    case 'read': return onReadFrame(f);
    case 'pong': return undefined;
    default: return undefined; // newer servers may send more
  }
}

let greetSeq = 0; // counts welcomes and closes: a sync outlived by either is dropped

async function onWelcome() {
  const seq = ++greetSeq;
  const wasReconnect = everConnected;
  everConnected = true;
  conn.welcomed();
  ui.banner.hidden = true;
  ui.banner.classList.remove('error');
  // The server's list of our rooms first: rooms we were removed from while
  // away must not be joined again (a public one would take us back), rooms
  // opened for us meanwhile (an invitation accepted elsewhere, a direct
  // room) are joined too.
  await syncRooms();
  refreshInvites();
  if (seq !== greetSeq || !conn) return;
  welcomed = true;
  refreshPendingStatus();
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
  scheduleRead();
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
    // A join may have just made us a member, or created the room: our
    // role and the member list are known only now.
    loadRoomDetails(room);
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
  const req = lifeRequests.get(f.clientId);
  if (req) {
    lifeRequests.delete(f.clientId);
    req.ack(f);
    return;
  }
  const msg = pending.get(f.clientId);
  if (!msg || typeof f.id !== 'string') return;
  confirm(msg, f.id, typeof f.ts === 'number' ? f.ts : msg.ts);
}

function onRateLimited(f) {
  const wait = Math.max(1, Number(f.retryAfterMs) || 1000);
  const req = lifeRequests.get(f.clientId);
  if (req) {
    // A click or two too fast (they share the message limits): the same
    // frame, same clientId, once the window reopens, as the protocol asks.
    if (req.retries < AUTO_RETRIES) {
      req.retries++;
      setTimeout(() => {
        if (lifeRequests.get(f.clientId) === req && welcomed && conn) conn.send(req.frame);
      }, wait);
      return;
    }
    lifeRequests.delete(f.clientId);
    req.refused(`you are doing that too fast. Wait ${waitText(Math.ceil(wait / 1000))} and try again.`, 'rate_limited');
    return;
  }
  const msg = pending.get(f.clientId);
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

// Refusals of a join leave the room out of the list: it is not ours.
const JOIN_REFUSALS = new Set(['invalid_room', 'too_many_rooms', 'not_found', 'banned', 'forbidden']);

function onErrorFrame(f) {
  const text = sentence(f.message || f.code);
  if (f.clientId && lifeRequests.has(f.clientId)) {
    const req = lifeRequests.get(f.clientId);
    lifeRequests.delete(f.clientId);
    req.refused(lifeRefusal(f, req.room), f.code);
    return;
  }
  if (f.clientId && pending.has(f.clientId)) {
    const msg = pending.get(f.clientId);
    fail(msg, 'Not sent: ' + (refusalText(f.code, msg.room, f.message) || text));
    return;
  }
  if (f.clientId && joinRequests.has(f.clientId)) {
    const name = joinRequests.get(f.clientId);
    joinRequests.delete(f.clientId);
    const why = refusalText(f.code, name, f.message);
    toast(why ? `Cannot join: ${why}` : `Cannot join #${name}: ${text}`, true);
    if (JOIN_REFUSALS.has(f.code) && name !== GENERAL) removeRoom(name);
    return;
  }
  // Typing in a room we may not write to (muted, read-only) has no
  // clientId; toast() shows the same words once while they are on screen.
  toast((f.room && refusalText(f.code, f.room, f.message)) || text, true);
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
  if (room.msgs.has(id)) {
    // Shown already; a history page carries the message's state now (its
    // edits, deletion and reactions, perhaps missed while away).
    const known = room.msgs.get(id);
    if (!isEvent(f)) {
      // Our own message confirmed by its ack learns whom it mentions from
      // its echo.
      if (!known.system && !known.mentions.length && Array.isArray(f.mentions) && f.mentions.length) {
        known.mentions = idList(f.mentions);
        messageChanged(room, known);
      }
      refreshState(room, known, f);
    }
    return null;
  }
  if (isEvent(f)) {
    // A room event: a system line, in id order like any message.
    const ev = flattenEvent(f);
    const msg = {
      id, synthetic, system: true, room: room.name, user: String(ev.user || ''), userId: '',
      text: eventText(ev), ts, clientId: '', state: 'sent', el: null,
    };
    insertConfirmed(room, msg);
    if (live && room.name === current) announce(msg.text);
    return msg;
  }
  if (typeof f.text !== 'string') return null;
  const own = f.userId === me().id;
  const mine = own && f.clientId ? pending.get(f.clientId) : null;
  if (mine && mine.room === room.name) {
    // Our pending message, echoed before its ack.
    mine.mentions = idList(f.mentions);
    confirm(mine, id, ts);
    return mine;
  }
  const msg = {
    id, synthetic, room: room.name, user: String(f.user || 'unknown'), userId: String(f.userId || ''),
    text: f.text, ts, clientId: f.clientId || '', state: 'sent', el: null,
    ...lifeFields(f),
  };
  insertConfirmed(room, msg);
  if (live && !own) {
    if (room.name === current && pinned && canReadNow()) {
      announce(`${msg.user}: ${msg.text.slice(0, 200)}`);
    } else {
      // Counted until read: another room, a hidden tab, or scrolled up.
      room.unread++;
      if (msg.mentions.includes(me().id)) room.mentions++;
      if (room.name === current) announce(`${msg.user}: ${msg.text.slice(0, 200)}`);
      renderRooms();
    }
  }
  return msg;
}

// lifeFields are a message frame's optional fields: what it answers, whom
// it mentions, its files and, in history, its edits, deletion and
// reactions.
function lifeFields(f) {
  return {
    replyTo: typeof f.replyTo === 'string' && parseId(f.replyTo) ? f.replyTo : '',
    mentions: idList(f.mentions),
    attachments: attachmentList(f.attachments),
    edited: typeof f.edited === 'number' ? f.edited : 0,
    editId: '',
    deleted: f.deleted === true,
    reactions: reactionMap(f.reactions),
    text: f.deleted === true ? '' : f.text,
  };
}

function idList(v) {
  return Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];
}

function attachmentList(v) {
  if (!Array.isArray(v)) return [];
  return v.filter((a) => a && typeof a.url === 'string').map((a) => ({
    url: a.url,
    fileType: String(a.fileType || ''),
    size: Number(a.size) || 0,
    filename: String(a.filename || 'file'),
  }));
}

// reactionMap: emoji -> {count, me, users}; users holds whom we saw react
// live, so a repeated frame does not count twice.
function reactionMap(v) {
  const m = new Map();
  if (!Array.isArray(v)) return m;
  for (const r of v) {
    if (!r || typeof r.emoji !== 'string' || !(Number(r.count) > 0)) continue;
    m.set(r.emoji, { count: Number(r.count), me: r.me === true, users: new Set() });
  }
  return m;
}

// refreshState takes a history frame's state of a message shown already.
function refreshState(room, msg, f) {
  if (msg.system || msg.state !== 'sent') return;
  let changed = false;
  if (f.deleted === true && !msg.deleted) {
    msg.deleted = true;
    msg.text = '';
    msg.attachments = [];
    changed = true;
  }
  if (!msg.deleted && typeof f.edited === 'number' && f.edited > msg.edited && typeof f.text === 'string') {
    msg.edited = f.edited;
    msg.text = f.text;
    changed = true;
  }
  if (Array.isArray(f.reactions) && !msg.reactPending) {
    msg.reactions = reactionMap(f.reactions);
    changed = true;
  }
  if (changed) messageChanged(room, msg);
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
  if (!msg.system) updateQuotesOf(room, msg.id); // replies shown before their original
  scheduleRead();
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
  const cont = !!prev && !li.classList.contains('system') && !prev.classList.contains('system')
    && prev.dataset.userId === li.dataset.userId
    && Math.abs(Number(li.dataset.ts) - Number(prev.dataset.ts)) < GROUP_GAP_MS
    && new Date(Number(li.dataset.ts)).toDateString() === new Date(Number(prev.dataset.ts)).toDateString();
  li.classList.toggle('cont', cont);
}

function buildMsgEl(msg) {
  if (msg.system) return buildSystemEl(msg);
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
  const quote = document.createElement('button');
  quote.type = 'button';
  quote.className = 'msg-quote';
  quote.hidden = true;
  quote.addEventListener('click', () => {
    if (msg.replyTo) jumpTo(msg.room, msg.replyTo);
  });
  const body = document.createElement('div');
  body.className = 'msg-body';
  const atts = document.createElement('div');
  atts.className = 'msg-atts';
  const reacts = document.createElement('div');
  reacts.className = 'msg-reacts';
  const status = document.createElement('div');
  status.className = 'msg-status';
  const actions = buildActions(msg);
  li.append(av, head, quote, body, atts, reacts, status, actions);
  msg.el = li;
  renderContent(msg);
  updateMsgEl(msg);
  return li;
}

// renderContent (re)draws what a message says: the quote of the message it
// answers, its text (or the tombstone), files and reactions.
function renderContent(msg) {
  const li = msg.el;
  if (!li || msg.system) return;
  const room = rooms.get(msg.room);
  renderQuote(room, msg);
  const body = li.querySelector('.msg-body');
  body.replaceChildren();
  body.classList.toggle('deleted', msg.deleted);
  li.classList.toggle('deleted', msg.deleted);
  if (msg.deleted) {
    body.textContent = 'message deleted';
  } else {
    renderText(body, msg.text, mentionNames(room, msg), me().username);
  }
  if (msg.edited && !msg.deleted) body.dataset.edited = msg.editPending ? 'saving' : 'yes';
  else delete body.dataset.edited;
  body.title = msg.edited && !msg.deleted ? `Edited ${formatFull(msg.edited)}` : '';
  body.hidden = !msg.deleted && !msg.text && msg.attachments.length > 0;
  li.classList.toggle('mentions-me', !msg.deleted && msg.mentions.includes(me().id));
  renderAttachments(msg, li.querySelector('.msg-atts'));
  renderReactions(msg, li.querySelector('.msg-reacts'));
  updateActions(msg);
}

// mentionNames: the lower-case usernames of the members a message
// mentions, as far as the page knows them (our own name always).
function mentionNames(room, msg) {
  if (!msg.mentions.length) return null;
  const names = new Set();
  for (const uid of msg.mentions) {
    if (uid === me().id) names.add(me().username.toLowerCase());
    const m = room && room.roster && room.roster.get(uid);
    const name = (m && m.username) || (room && room.members.get(uid)) || '';
    if (name) names.add(name.toLowerCase());
  }
  return names;
}

// renderQuote shows the message msg answers: its author and the start of
// its text, "message deleted" once it is, or a link to look for it when it
// is not loaded.
function renderQuote(room, msg) {
  const q = msg.el.querySelector('.msg-quote');
  q.replaceChildren();
  q.hidden = !msg.replyTo || msg.deleted;
  if (q.hidden) return;
  const orig = room && room.msgs.get(msg.replyTo);
  const who = document.createElement('span');
  who.className = 'quote-author';
  const what = document.createElement('span');
  what.className = 'quote-text';
  q.classList.toggle('gone', !!(orig && orig.deleted));
  if (!orig) {
    who.textContent = '';
    what.textContent = 'Replying to an earlier message (show it)';
  } else if (orig.deleted) {
    who.textContent = orig.user;
    what.textContent = 'message deleted';
  } else {
    who.textContent = orig.user;
    const text = orig.text || (orig.attachments.length ? orig.attachments.map((a) => a.filename).join(', ') : '');
    const chars = Array.from(text);
    what.textContent = chars.length > QUOTE_CHARS ? chars.slice(0, QUOTE_CHARS).join('') + '…' : text;
  }
  q.dataset.replyTo = msg.replyTo;
  q.setAttribute('aria-label', orig ? `In reply to ${orig.user}: ${what.textContent}. Show the message.` : 'In reply to an earlier message. Show it.');
  q.append(who, what);
}

// updateQuotesOf redraws the quotes of the replies to id (it was loaded,
// edited or deleted).
function updateQuotesOf(room, id) {
  if (!room || room.name !== current) return;
  for (const mid of room.order) {
    const m = room.msgs.get(mid);
    if (m && m.replyTo === id && m.el) renderQuote(room, m);
  }
  for (const m of room.pending) if (m.replyTo === id && m.el) renderQuote(room, m);
}

// messageChanged redraws a message whose state changed, and the replies
// quoting it.
function messageChanged(room, msg) {
  if (msg.el) {
    const stick = room.name === current && pinned;
    renderContent(msg);
    if (stick) scrollToBottom();
  }
  updateQuotesOf(room, msg.id);
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
  if (!msg.system) updateActions(msg);
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

function sendMessage(text, { replyTo = '', attachments = [] } = {}) {
  const room = rooms.get(current);
  if (!room) return;
  const msg = {
    id: null, synthetic: false, room: room.name, user: me().username, userId: me().id, text,
    ts: Date.now(), clientId: newClientId(), state: 'pending', el: null, auto: false, autoRetries: 0, error: '',
    ...lifeFields({ text, replyTo, attachments }),
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
    const frame = { type: 'message', room: msg.room, text: msg.text, clientId: msg.clientId };
    if (msg.replyTo) frame.replyTo = msg.replyTo;
    if (msg.attachments.length) frame.attachments = msg.attachments;
    conn.send(frame);
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
  renderContent(msg); // its actions, and the mentions its echo named
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

// ---- A message's life: edit, delete, reply, react --------------------------------

// lifeRequests: clientId -> {room, ack(frame), refused(text, code)} of our
// edit, delete, react and read frames waiting for their ack.
const lifeRequests = new Map();

// sendLife sends a life frame; it reports false (and says why) when the
// connection is down: unlike messages, these are not queued, since the
// message they act on may change meanwhile.
function sendLife(frame, { ack = () => {}, refused = () => {}, quiet = false } = {}) {
  if (!welcomed || !conn) {
    if (!quiet) toast('You are offline. Try again once the connection is back.', true);
    return false;
  }
  const clientId = frame.type + '-' + newClientId();
  const req = { room: frame.room, frame: { ...frame, clientId }, retries: 0, ack, refused };
  lifeRequests.set(clientId, req);
  if (!conn.send(req.frame)) {
    lifeRequests.delete(clientId);
    if (!quiet) toast('You are offline. Try again once the connection is back.', true);
    return false;
  }
  return true;
}

// failLifeRequests: the connection closed before their acks. The server
// may have taken them; the `since` replay of the next join says so.
function failLifeRequests() {
  const reqs = [...lifeRequests.values()];
  lifeRequests.clear();
  for (const r of reqs) r.refused('the connection was lost before the server answered.', 'disconnected');
}

// lifeRefusal words the error frame answering an edit, delete or react.
function lifeRefusal(f, room) {
  switch (f.code) {
    case 'unknown_message': return 'that message no longer exists here.';
    case 'message_deleted': return 'that message was deleted.';
    case 'invalid_emoji': return 'that emoji is not one of the reactions the server allows.';
    case 'forbidden':
      if (/\bread\b.*\bnot write\b/i.test(f.message || '')) return `you can only read #${room}.`;
      return f.message ? `${lowerFirst(sentence(f.message))}` : 'you are not allowed to do that.';
    default: {
      const r = refusalText(f.code, room, f.message);
      return r ? lowerFirst(r) : lowerFirst(sentence(f.message || f.code));
    }
  }
}

// mayModerate: room admins, the owner and server administrators delete
// anyone's message (not in direct rooms).
function mayModerate(room) {
  return !!room && canManageRoom(standing(room));
}

function buildActions(msg) {
  const bar = document.createElement('div');
  bar.className = 'msg-actions';
  const mk = (cls, label, text, fn) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'act ' + cls;
    b.title = label;
    b.setAttribute('aria-label', label);
    b.textContent = text;
    b.addEventListener('click', (ev) => {
      ev.stopPropagation();
      fn(b);
    });
    bar.append(b);
    return b;
  };
  mk('act-react', 'Add a reaction', '☺+', (b) => openPicker(msg, b));
  mk('act-reply', 'Reply', '↩', () => setReply(msg));
  mk('act-edit', 'Edit', '✎', () => startEdit(msg));
  mk('act-delete', 'Delete', '🗑', () => openDeleteDialog(msg));
  return bar;
}

// updateActions shows the actions a message offers us: none while it is
// pending or once deleted; edit our own; delete our own, or any as a
// moderator; react and reply where we may write.
function updateActions(msg) {
  const li = msg.el;
  if (!li) return;
  const bar = li.querySelector('.msg-actions');
  if (!bar) return;
  const room = rooms.get(msg.room);
  const live = msg.state === 'sent' && !msg.synthetic && !!msg.id && !msg.deleted && !!room;
  const own = msg.userId === me().id;
  const write = !!room && canSend(standing(room));
  bar.querySelector('.act-react').hidden = !(live && write);
  bar.querySelector('.act-reply').hidden = !(live && write);
  bar.querySelector('.act-edit').hidden = !(live && own && write);
  bar.querySelector('.act-delete').hidden = !(live && (own || mayModerate(room)));
  bar.hidden = !live;
}

// ---- Edit ----

let editing = null; // {msg, area, hint}

// lastOwnMessage: the newest message of ours in the open room we may edit.
function lastOwnMessage() {
  const room = rooms.get(current);
  if (!room) return null;
  for (let i = room.order.length - 1; i >= 0; i--) {
    const m = room.msgs.get(room.order[i]);
    if (m && !m.system && !m.synthetic && m.userId === me().id && !m.deleted && m.state === 'sent') return m;
  }
  return null;
}

function startEdit(msg) {
  if (!msg || !msg.el || msg.deleted) return;
  endEdit();
  const body = msg.el.querySelector('.msg-body');
  const area = document.createElement('textarea');
  area.className = 'msg-editor';
  area.value = msg.text;
  area.rows = Math.min(8, msg.text.split('\n').length);
  area.setAttribute('aria-label', 'Edit the message');
  const hint = document.createElement('div');
  hint.className = 'edit-hint';
  hint.textContent = 'Enter saves · Esc cancels';
  body.hidden = true;
  body.after(area, hint);
  msg.el.classList.add('editing');
  editing = { msg, area, hint };
  area.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      endEdit();
      ui.input.focus();
    } else if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      saveEdit();
    }
  });
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
  if (current === msg.room && msg === lastOwnMessage() && pinned) scrollToBottom();
}

function endEdit() {
  if (!editing) return;
  const { msg, area, hint } = editing;
  editing = null;
  area.remove();
  hint.remove();
  if (msg.el) {
    msg.el.classList.remove('editing');
    renderContent(msg);
  }
}

function saveEdit() {
  if (!editing) return;
  const { msg, area, hint } = editing;
  const text = area.value.trim();
  if (text === msg.text) {
    endEdit();
    ui.input.focus();
    return;
  }
  if (!text) {
    hint.textContent = 'A message cannot be empty: delete it instead. (Esc cancels)';
    hint.classList.add('error');
    return;
  }
  if (textLength(text) > MAX_TEXT) {
    hint.textContent = `${textLength(text) - MAX_TEXT} characters over the limit of ${MAX_TEXT}. (Esc cancels)`;
    hint.classList.add('error');
    return;
  }
  const room = rooms.get(msg.room);
  const before = { text: msg.text, edited: msg.edited, editId: msg.editId };
  const sent = sendLife({ type: 'edit', room: msg.room, id: msg.id, text }, {
    ack: (f) => {
      msg.editPending = false;
      if (typeof f.id === 'string' && parseId(f.id)) {
        // The echo may have come first; a later edit (another tab) wins.
        if (!msg.editId || compareIds(f.id, msg.editId) > 0) {
          msg.editId = f.id;
          msg.text = text;
        }
        room.lifeSeen.add(f.id);
        noteId(room, f.id);
      }
      msg.edited = typeof f.ts === 'number' && f.ts > 0 ? f.ts : Date.now();
      if (room) messageChanged(room, msg);
    },
    refused: (why) => {
      msg.editPending = false;
      if (msg.editId === before.editId) {
        msg.text = before.text;
        msg.edited = before.edited;
      }
      if (room) messageChanged(room, msg);
      toast(`Not saved: ${why}`, true);
    },
  });
  if (!sent) return;
  msg.text = text;
  msg.edited = msg.edited || Date.now();
  msg.editPending = true;
  endEdit(); // redraws with the new text, marked as saving
  ui.input.focus();
}

// lifeTarget finds the room and message of a live life frame, and records
// the frame's id (so the next join's `since` covers it); null when the
// frame was applied already or its message is not loaded here.
function lifeTarget(f) {
  const room = rooms.get(f.room);
  if (!room || typeof f.id !== 'string' || !parseId(f.id)) return null;
  noteId(room, f.id);
  if (room.lifeSeen.has(f.id)) return null;
  room.lifeSeen.add(f.id);
  const msg = typeof f.messageId === 'string' ? room.msgs.get(f.messageId) : null;
  if (!msg || msg.system) return null;
  return { room, msg };
}

function onEdited(f) {
  const t = lifeTarget(f);
  if (!t || typeof f.text !== 'string') return;
  const { room, msg } = t;
  // The last edit wins by id order; a deleted message stays deleted.
  if (msg.deleted || (msg.editId && compareIds(f.id, msg.editId) <= 0)) return;
  msg.editId = f.id;
  msg.text = f.text;
  msg.edited = typeof f.ts === 'number' ? f.ts : Date.now();
  if (f.clientId && lifeRequests.has(f.clientId)) msg.editPending = false;
  if (editing && editing.msg === msg) endEdit();
  messageChanged(room, msg);
}

// ---- Delete ----

let deleteTarget = null;

function openDeleteDialog(msg) {
  const dlg = $('delete-dialog');
  openDialog(dlg, msg.room);
  deleteTarget = msg;
  const own = msg.userId === me().id;
  $('delete-title').textContent = own ? 'Delete your message?' : `Delete ${msg.user}'s message?`;
  const chars = Array.from(msg.text || msg.attachments.map((a) => a.filename).join(', '));
  $('delete-preview').textContent = chars.length > 200 ? chars.slice(0, 200).join('') + '…' : chars.join('');
  $('delete-confirm').disabled = false;
  $('delete-confirm').focus();
}

function onDeleteSubmit(ev) {
  ev.preventDefault();
  const msg = deleteTarget;
  const errEl = $('delete-error');
  if (!msg) return;
  errEl.textContent = '';
  const room = rooms.get(msg.room);
  const btn = $('delete-confirm');
  btn.disabled = true;
  const sent = sendLife({ type: 'delete', room: msg.room, id: msg.id }, {
    quiet: true,
    ack: (f) => {
      if (room && typeof f.id === 'string' && parseId(f.id)) {
        room.lifeSeen.add(f.id);
        noteId(room, f.id);
      }
      tombstone(room, msg);
      if (deleteTarget === msg) {
        deleteTarget = null;
        closeDialogs();
      }
      announce('Message deleted.');
    },
    refused: (why) => {
      btn.disabled = false;
      if (deleteTarget === msg) errEl.textContent = `Not deleted: ${why}`;
      else toast(`Not deleted: ${why}`, true);
    },
  });
  if (!sent) {
    btn.disabled = false;
    errEl.textContent = 'You are offline. Try again once the connection is back.';
  }
}

function tombstone(room, msg) {
  if (msg.deleted) return;
  // The server leaves deleted messages out of unread counts: one counted
  // here stops counting too.
  const counted = room && countsUnread(room, msg);
  msg.deleted = true;
  if (counted && room.unread > 0) {
    room.unread--;
    if (msg.mentions.includes(me().id) && room.mentions > 0) room.mentions--;
    renderRooms();
  }
  msg.text = '';
  msg.attachments = [];
  msg.reactions = new Map();
  if (editing && editing.msg === msg) endEdit();
  if (replyTarget && replyTarget.id === msg.id) setReply(null);
  if (room) messageChanged(room, msg);
}

// countsUnread: msg is one of the room's unread messages: another user's,
// newer than the read marker and than the last read we sent.
function countsUnread(room, msg) {
  if (msg.deleted || msg.system || msg.synthetic || msg.userId === me().id) return false;
  for (const upTo of [room.readMarker, room.readSent]) {
    if (upTo && compareIds(msg.id, upTo) <= 0) return false;
  }
  return true;
}

function onDeleted(f) {
  const t = lifeTarget(f);
  if (!t) return;
  tombstone(t.room, t.msg);
}

// ---- Reply ----

let replyTarget = null; // the message the composer answers

function setReply(msg) {
  replyTarget = msg && msg.id ? msg : null;
  ui.replyBar.hidden = !replyTarget;
  ui.replyText.replaceChildren();
  if (!replyTarget) return;
  const who = document.createElement('strong');
  who.textContent = replyTarget.user;
  const chars = Array.from(replyTarget.text || replyTarget.attachments.map((a) => a.filename).join(', '));
  const text = chars.length > 80 ? chars.slice(0, 80).join('') + '…' : chars.join('');
  ui.replyText.append('Replying to ', who, ': ', text);
  ui.input.focus();
}

// ---- Reactions ----

let pickerFor = null; // the message the reaction picker is open for

function openPicker(msg, anchor) {
  if (pickerFor === msg && !ui.reactPicker.hidden) {
    closePicker();
    return;
  }
  closePicker();
  pickerFor = msg;
  const p = ui.reactPicker;
  p.replaceChildren();
  for (const emoji of REACTIONS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'pick';
    b.setAttribute('role', 'menuitem');
    b.dataset.emoji = emoji;
    b.setAttribute('aria-label', `React with ${emoji}`);
    b.textContent = emoji;
    const r = msg.reactions.get(emoji);
    if (r && r.me) b.classList.add('mine');
    b.addEventListener('click', (ev) => {
      ev.stopPropagation();
      closePicker();
      toggleReaction(msg, emoji);
    });
    p.append(b);
  }
  // The picker lives in the message, so CSS places it without a style set
  // from script.
  msg.el.append(p);
  p.hidden = false;
  pickerAnchor = anchor;
  p.querySelector('button').focus();
}

let pickerAnchor = null;

function closePicker() {
  const p = ui.reactPicker;
  if (p.hidden) return;
  p.hidden = true;
  const hadFocus = p.contains(document.activeElement);
  document.body.append(p);
  pickerFor = null;
  if (hadFocus && pickerAnchor && pickerAnchor.isConnected) pickerAnchor.focus();
  pickerAnchor = null;
}

function toggleReaction(msg, emoji) {
  if (msg.deleted || !msg.id) return;
  const room = rooms.get(msg.room);
  const r = msg.reactions.get(emoji);
  const on = !(r && r.me);
  const undo = () => applyReaction(msg, emoji, me().id, !on);
  const sent = sendLife({ type: 'react', room: msg.room, id: msg.id, emoji, on }, {
    ack: (f) => {
      msg.reactPending = Math.max(0, (msg.reactPending || 0) - 1);
      if (room && typeof f.id === 'string' && parseId(f.id)) {
        room.lifeSeen.add(f.id);
        noteId(room, f.id);
      }
    },
    refused: (why) => {
      msg.reactPending = Math.max(0, (msg.reactPending || 0) - 1);
      undo();
      if (room) messageChanged(room, msg);
      toast(`Reaction not saved: ${why}`, true);
    },
  });
  if (!sent) return;
  msg.reactPending = (msg.reactPending || 0) + 1;
  applyReaction(msg, emoji, me().id, on);
  if (room) messageChanged(room, msg);
}

// applyReaction counts userId's reaction on or off, once: a user we saw
// react already is not counted again, and our own flag is exact.
function applyReaction(msg, emoji, userId, on) {
  let r = msg.reactions.get(emoji);
  const mine = userId === me().id;
  if (on) {
    if (!r) {
      r = { count: 0, me: false, users: new Set() };
      msg.reactions.set(emoji, r);
    }
    if (mine ? r.me : r.users.has(userId)) return false;
    r.count++;
    if (mine) r.me = true;
    else r.users.add(userId);
    return true;
  }
  if (!r) return false;
  if (mine ? !r.me : false) return false;
  if (mine) r.me = false;
  else r.users.delete(userId);
  r.count = Math.max(0, r.count - 1);
  if (r.count === 0) msg.reactions.delete(emoji);
  return true;
}

function onReaction(f) {
  const t = lifeTarget(f);
  if (!t || typeof f.emoji !== 'string' || typeof f.userId !== 'string') return;
  const { room, msg } = t;
  if (msg.deleted) return;
  if (applyReaction(msg, f.emoji, f.userId, f.on !== false)) messageChanged(room, msg);
}

// renderReactions updates the reaction buttons in place, keyed by emoji:
// rebuilt, a button would lose the keyboard focus (and a click in
// progress) whenever anyone reacts.
function renderReactions(msg, el) {
  const list = msg.deleted ? [] : [...msg.reactions].filter(([, r]) => r.count > 0);
  el.hidden = list.length === 0;
  const room = rooms.get(msg.room);
  const write = !!room && canSend(standing(room)) && msg.state === 'sent';
  const old = new Map([...el.children].map((b) => [b.dataset.emoji, b]));
  const want = list.map(([emoji, r]) => {
    let b = old.get(emoji);
    if (!b) {
      b = document.createElement('button');
      b.type = 'button';
      b.dataset.emoji = emoji;
      const e = document.createElement('span');
      e.className = 'r-emoji';
      e.textContent = emoji;
      const c = document.createElement('span');
      c.className = 'r-count';
      b.append(e, c);
      b.addEventListener('click', () => toggleReaction(msg, emoji));
    }
    b.className = 'reaction' + (r.me ? ' mine' : '');
    b.setAttribute('aria-pressed', r.me ? 'true' : 'false');
    b.setAttribute('aria-label', `${emoji} ${r.count}${r.me ? ', including you' : ''}. ${r.me ? 'Remove your reaction' : 'React too'}`);
    b.disabled = !write;
    b.querySelector('.r-count').textContent = String(r.count);
    return b;
  });
  const cur = el.children;
  if (cur.length === want.length && want.every((b, i) => cur[i] === b)) return;
  el.replaceChildren(...want);
}

// ---- Read markers and unread counts ----

let lookingAt = ''; // the room the user opened and has not looked away from since
let readTimer = 0;
let lastReadAt = 0;

// canReadNow: the open room counts as read only while the tab is visible
// and focused, or was just opened by the user.
function canReadNow() {
  if (!session || document.hidden) return false;
  return document.hasFocus() || lookingAt === current;
}

function badgeText(n) {
  return n >= BADGE_CAP ? `${BADGE_CAP - 1}+` : String(n);
}

// scheduleRead reports the newest message in view as read, at most once
// every READ_EVERY_MS (scrolling through a busy room would otherwise send
// a frame per scroll event).
function scheduleRead() {
  if (readTimer) return;
  const wait = Math.max(0, lastReadAt + READ_EVERY_MS - Date.now());
  readTimer = setTimeout(() => {
    readTimer = 0;
    doRead();
  }, wait);
}

function doRead() {
  const room = rooms.get(current);
  if (!room || !canReadNow() || ui.chatView.hidden) return;
  const id = newestVisibleId(room);
  if (!id) return;
  markReadUpTo(room, id);
  if (room.readSent && compareIds(id, room.readSent) <= 0) return;
  if (room.readMarker && compareIds(id, room.readMarker) <= 0) return;
  // A refused read (an old server, a room we just left) is nothing to
  // tell the user about; a lost one (refused, or the connection closed
  // before its ack) is sent again on the next read of the room.
  const sent = sendLife({ type: 'read', room: room.name, id }, {
    quiet: true,
    refused: () => { if (room.readSent === id) room.readSent = ''; },
  });
  if (!sent) return;
  room.readSent = id;
  lastReadAt = Date.now();
}

// newestVisibleId: the newest message (not a room event, not one of ours
// still pending) whose top is in view; at the bottom, simply the newest.
function newestVisibleId(room) {
  const ids = room.order;
  const isMsg = (m) => m && !m.system && !m.synthetic;
  if (pinned) {
    for (let i = ids.length - 1; i >= 0; i--) if (isMsg(room.msgs.get(ids[i]))) return ids[i];
    return '';
  }
  const view = ui.scroller.getBoundingClientRect();
  for (let i = ids.length - 1; i >= 0; i--) {
    const m = room.msgs.get(ids[i]);
    if (!isMsg(m) || !m.el || !m.el.isConnected) continue;
    const top = m.el.getBoundingClientRect().top;
    if (top < view.bottom - 8 && top >= view.top - m.el.offsetHeight) return ids[i];
    if (top < view.top) break;
  }
  return '';
}

// markReadUpTo recounts a room's unread messages after id, as far as the
// loaded ones tell (the newest loaded is the room's newest once its
// history is here).
function markReadUpTo(room, id) {
  let unread = 0;
  let mentions = 0;
  for (let i = room.order.length - 1; i >= 0; i--) {
    const mid = room.order[i];
    if (compareIds(mid, id) <= 0) break;
    const m = room.msgs.get(mid);
    if (!m || m.system || m.synthetic || m.userId === me().id) continue;
    unread++;
    if (m.mentions.includes(me().id)) mentions++;
  }
  if (unread === room.unread && mentions === room.mentions) return;
  room.unread = Math.min(room.unread, unread);
  room.mentions = Math.min(room.mentions, mentions);
  renderRooms();
}

// applyUnread takes GET /api/rooms' counts, unless the room is the one
// being read (its read marker is on its way).
function applyUnread(room, r) {
  if (typeof r.unread !== 'number') return;
  if (room.name === current && canReadNow()) {
    scheduleRead();
    return;
  }
  room.unread = Math.max(0, r.unread);
  room.mentions = Math.max(0, typeof r.mentions === 'number' ? r.mentions : 0);
}

let unreadSync = 0;

// onReadFrame: a read marker moved. Ours (another tab or device read the
// room): what it covers is read here too. The other member's, in a direct
// room: our messages up to it are seen.
function onReadFrame(f) {
  const room = rooms.get(f.room);
  if (!room || typeof f.messageId !== 'string' || !parseId(f.messageId)) return;
  if (typeof f.id === 'string' && parseId(f.id)) noteId(room, f.id);
  if (f.userId !== me().id) {
    if (!room.peerRead || compareIds(f.messageId, room.peerRead) > 0) {
      room.peerRead = f.messageId;
      renderSeen(room);
    }
    return;
  }
  if (room.readMarker && compareIds(f.messageId, room.readMarker) <= 0) return;
  room.readMarker = f.messageId;
  if (room.msgs.has(f.messageId) || (room.lastId && compareIds(f.messageId, room.lastId) >= 0) || room.historyLoaded) {
    markReadUpTo(room, f.messageId);
  } else {
    // Not loaded here: the server counts.
    clearTimeout(unreadSync);
    unreadSync = setTimeout(syncRooms, 300);
  }
}

// renderSeen marks, in a direct room, the newest of our messages the other
// member has read.
function renderSeen(room) {
  if (room.name !== current) return;
  for (const el of ui.messages.querySelectorAll('.msg.seen')) el.classList.remove('seen');
  if (!room.peerRead) return;
  for (let i = room.order.length - 1; i >= 0; i--) {
    const m = room.msgs.get(room.order[i]);
    if (!m || m.system || m.userId !== me().id || compareIds(m.id, room.peerRead) > 0) continue;
    if (m.el) m.el.classList.add('seen');
    return;
  }
}

// ---- @-completion ----------------------------------------------------------------

let mentionState = null; // {start, items: [username], index}

// memberNames: everyone the page knows in the open room (its member list,
// or who is online), without us.
function memberNames(room) {
  const names = new Set();
  if (room.roster) for (const m of room.roster.values()) if (m.userId !== me().id && m.username) names.add(m.username);
  for (const [uid, name] of room.members) if (uid !== me().id && name) names.add(name);
  return [...names];
}

function updateMentions() {
  const room = rooms.get(current);
  const at = room && ui.input.selectionStart === ui.input.selectionEnd
    ? mentionAt(ui.input.value, ui.input.selectionStart) : null;
  if (!at) {
    closeMentions();
    return;
  }
  const q = at.query.toLowerCase();
  const items = memberNames(room)
    .filter((n) => n.toLowerCase().startsWith(q))
    .sort((a, b) => a.length - b.length || a.localeCompare(b))
    .slice(0, MENTION_CHOICES);
  if (!items.length) {
    closeMentions();
    return;
  }
  const keep = mentionState && items.includes(mentionState.items[mentionState.index]);
  const index = keep ? items.indexOf(mentionState.items[mentionState.index]) : 0;
  mentionState = { start: at.start, items, index };
  renderMentionList();
}

function renderMentionList() {
  const st = mentionState;
  ui.mentionList.replaceChildren();
  st.items.forEach((name, i) => {
    const li = document.createElement('li');
    li.id = `mention-opt-${i}`;
    li.className = 'mention-opt' + (i === st.index ? ' active' : '');
    li.setAttribute('role', 'option');
    li.setAttribute('aria-selected', i === st.index ? 'true' : 'false');
    li.dataset.username = name;
    const av = document.createElement('span');
    av.className = 'avatar small ' + hue(name);
    av.setAttribute('aria-hidden', 'true');
    av.textContent = initial(name);
    const n = document.createElement('span');
    n.textContent = name;
    li.append(av, n);
    // mousedown, not click: the composer keeps the focus.
    li.addEventListener('mousedown', (ev) => {
      ev.preventDefault();
      pickMention(i);
    });
    ui.mentionList.append(li);
  });
  ui.mentionList.hidden = false;
  ui.input.setAttribute('aria-expanded', 'true');
  ui.input.setAttribute('aria-activedescendant', `mention-opt-${st.index}`);
}

function closeMentions() {
  mentionState = null;
  ui.mentionList.hidden = true;
  ui.mentionList.replaceChildren();
  ui.input.setAttribute('aria-expanded', 'false');
  ui.input.removeAttribute('aria-activedescendant');
}

function pickMention(i) {
  const st = mentionState;
  if (!st) return;
  const name = st.items[i];
  const v = ui.input.value;
  const caret = ui.input.selectionStart;
  const insert = `@${name} `;
  ui.input.value = v.slice(0, st.start) + insert + v.slice(caret);
  const pos = st.start + insert.length;
  ui.input.setSelectionRange(pos, pos);
  closeMentions();
  onInput();
}

// mentionKey handles the keys of the open completion list; it reports
// whether it took the key.
function mentionKey(ev) {
  const st = mentionState;
  if (!st || ui.mentionList.hidden) return false;
  switch (ev.key) {
    case 'ArrowDown':
    case 'ArrowUp':
      st.index = (st.index + (ev.key === 'ArrowDown' ? 1 : -1) + st.items.length) % st.items.length;
      renderMentionList();
      return true;
    case 'Enter':
    case 'Tab':
      if (ev.shiftKey) return false;
      pickMention(st.index);
      return true;
    case 'Escape':
      closeMentions();
      return true;
    default:
      return false;
  }
}

// ---- Search ----------------------------------------------------------------------

let searchGen = 0;
let searchArgs = null; // {q, room} of the results shown
let searchBefore = ''; // the cursor of the next page

function openSearch(q) {
  const dlg = $('search-dialog');
  if (!dlg.open) openDialog(dlg);
  $('search-dialog-q').value = q;
  const room = rooms.get(current);
  $('search-scope').options[1].textContent = room ? `#${roomLabel(room.info, room.name)} only` : 'This room';
  if (q.trim()) runSearch(true);
  else {
    $('search-results').replaceChildren();
    $('search-status').textContent = '';
  }
  $('search-dialog-q').focus();
}

async function runSearch(reset) {
  const list = $('search-results');
  const status = $('search-status');
  const errEl = $('search-error');
  const more = $('search-more');
  if (reset) {
    const q = $('search-dialog-q').value.trim();
    if (!q) {
      errEl.textContent = 'Type what to look for.';
      return;
    }
    searchArgs = { q, room: $('search-scope').value === 'room' ? current : '' };
    searchBefore = '';
    list.replaceChildren();
  }
  if (!searchArgs) return;
  const gen = ++searchGen;
  const args = searchArgs;
  errEl.textContent = '';
  status.textContent = 'Searching…';
  more.hidden = true;
  try {
    const res = await authed((t) => api.search(t, { q: args.q, room: args.room, before: searchBefore, limit: SEARCH_PAGE }));
    if (gen !== searchGen) return;
    const found = ((res && res.messages) || []).filter((m) => m && typeof m.id === 'string' && typeof m.room === 'string');
    for (const m of found) list.append(searchResultEl(m));
    if (found.length) searchBefore = found[found.length - 1].id;
    more.hidden = !(res && res.hasMore && found.length);
    const n = list.children.length;
    status.textContent = n === 0 ? `Nothing matches “${args.q}”${args.room ? ` in #${args.room}` : ''}.`
      : `${n}${more.hidden ? '' : '+'} message${n === 1 ? '' : 's'} match${n === 1 ? 'es' : ''} “${args.q}”.`;
  } catch (err) {
    if (gen !== searchGen) return;
    status.textContent = '';
    if (err instanceof ApiError && err.status === 400) errEl.textContent = `The search was not understood: ${lowerFirst(sentence(err.message))}`;
    else errEl.textContent = `Could not search: ${lowerFirst(refusal(err))}`;
  }
}

function searchResultEl(m) {
  const li = document.createElement('li');
  li.className = 'search-result';
  li.dataset.id = m.id;
  li.dataset.room = m.room;
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'result-btn';
  const head = document.createElement('span');
  head.className = 'result-head';
  const where = document.createElement('span');
  where.className = 'result-room';
  const r = rooms.get(m.room);
  where.textContent = r && r.info.type === 'direct' ? `@${roomLabel(r.info, m.room)}` : `#${r ? roomLabel(r.info, m.room) : m.room}`;
  const who = document.createElement('span');
  who.className = 'result-user';
  who.textContent = String(m.user || '');
  const when = document.createElement('time');
  when.className = 'msg-time';
  if (typeof m.ts === 'number') {
    when.dateTime = new Date(m.ts).toISOString();
    when.textContent = formatTime(m.ts);
    when.title = formatFull(m.ts);
  }
  head.append(where, who, when);
  const text = document.createElement('span');
  text.className = 'result-text';
  for (const part of markedParts(String(m.text || ''), m.highlights)) {
    if (part.mark) {
      const mark = document.createElement('mark');
      mark.textContent = part.text;
      text.append(mark);
    } else {
      text.append(document.createTextNode(part.text));
    }
  }
  b.append(head, text);
  b.addEventListener('click', () => {
    closeDialogs();
    jumpTo(m.room, m.id);
  });
  li.append(b);
  return li;
}

let jumpGen = 0;

// jumpTo opens a room at a message: loaded already, or found by loading
// older pages (at most JUMP_PAGES), then scrolled to and flashed.
async function jumpTo(roomName, id) {
  if (!rooms.has(roomName)) {
    if (!ROOM_RE.test(roomName)) return;
    addRoom(roomName, null, '', { open: false });
  }
  if (current !== roomName) switchRoom(roomName);
  const gen = ++jumpGen;
  const room = rooms.get(roomName);
  for (let i = 0; i < JUMP_PAGES + 20; i++) {
    if (gen !== jumpGen || rooms.get(roomName) !== room || current !== roomName) return;
    if (room.msgs.has(id)) {
      reveal(room.msgs.get(id));
      return;
    }
    if (room.loading) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    if (!room.historyLoaded) {
      await loadLatest(room);
      continue;
    }
    const oldest = room.order.find((x) => !room.msgs.get(x).synthetic);
    if (!room.hasMore || !oldest || compareIds(id, oldest) > 0) break;
    await loadOlder(room);
  }
  if (gen === jumpGen) toast('That message is not in this room any more.', true);
}

function reveal(msg) {
  if (!msg.el || !msg.el.isConnected) return;
  msg.el.scrollIntoView({ block: 'center' });
  lastScrollTop = ui.scroller.scrollTop;
  pinned = atBottom();
  noteReading();
  msg.el.classList.remove('flash');
  // Restart the animation on a second jump to the same message.
  void msg.el.offsetWidth;
  msg.el.classList.add('flash');
  const q = msg.el.querySelector('.msg-body');
  announce(`${msg.user}: ${q ? q.textContent.slice(0, 200) : ''}`);
}

// ---- Attachments ----------------------------------------------------------------

// uploads of the composer, in order: {file, room, state ("uploading",
// "done", "failed"), sent, att, handle, el, error}
let uploads = [];

function stageFiles(files) {
  const room = rooms.get(current);
  if (!room || !files || !files.length) return;
  if (!canSend(standing(room))) {
    toast(`You can only read #${room.name}: you cannot send files there.`, true);
    return;
  }
  for (const file of files) {
    const up = { file, room: room.name, state: 'uploading', sent: 0, att: null, handle: null, el: null, error: '' };
    uploads.push(up);
    startUpload(up);
  }
  renderUploads();
}

function startUpload(up) {
  up.state = 'uploading';
  up.sent = 0;
  up.error = '';
  up.handle = api.upload(session.token, up.room, up.file, (sent, total) => {
    up.sent = sent;
    up.total = total;
    updateUploadEl(up);
  });
  up.handle.done.then((att) => {
    up.state = 'done';
    up.att = att;
    updateUploadEl(up);
    updateSendState();
  }, (err) => {
    if (err && err.name === 'AbortError') return;
    up.state = 'failed';
    up.error = uploadRefusal(up.file, err);
    if (err instanceof ApiError && err.status === 401) endSession('Your session has ended. Log in again.');
    updateUploadEl(up);
    updateSendState();
  });
  updateSendState();
}

function uploadRefusal(file, err) {
  if (!(err instanceof ApiError)) return 'Not uploaded: something went wrong.';
  switch (err.status) {
    case 413: return `Too large to upload${err.message && !/^HTTP/.test(err.message) ? `: ${lowerFirst(sentence(err.message))}` : '.'}`;
    case 415: return `Files of this type (${file.type || 'unknown'}) are not allowed here.`;
    case 429: return `Too many uploads at once: retry in ${err.retryAfter || 60} s.`;
    case 404: case 405: return 'Not uploaded: the room is not found, or this server takes no attachments.';
    default: return 'Not uploaded: ' + lowerFirst(refusal(err));
  }
}

function renderUploads() {
  ui.uploads.replaceChildren();
  for (const up of uploads) {
    if (!up.el) up.el = buildUploadEl(up);
    ui.uploads.append(up.el);
    updateUploadEl(up);
  }
  ui.uploads.hidden = uploads.length === 0;
  updateSendState();
}

function buildUploadEl(up) {
  const li = document.createElement('li');
  li.className = 'upload';
  const name = document.createElement('span');
  name.className = 'up-name';
  name.textContent = up.file.name || 'file';
  name.title = up.file.name || '';
  const size = document.createElement('span');
  size.className = 'up-size';
  size.textContent = formatSize(up.file.size);
  const bar = document.createElement('progress');
  bar.className = 'up-progress';
  bar.max = 100;
  bar.setAttribute('aria-label', `Uploading ${up.file.name}`);
  const status = document.createElement('span');
  status.className = 'up-status';
  const retry = document.createElement('button');
  retry.type = 'button';
  retry.className = 'btn subtle up-retry';
  retry.textContent = 'Retry';
  retry.addEventListener('click', () => startUpload(up));
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'icon-btn small up-remove';
  remove.setAttribute('aria-label', `Remove ${up.file.name}`);
  remove.title = 'Remove';
  remove.textContent = '×';
  remove.addEventListener('click', () => removeUpload(up));
  li.append(name, size, bar, status, retry, remove);
  return li;
}

function updateUploadEl(up) {
  const li = up.el;
  if (!li) return;
  li.dataset.state = up.state;
  const bar = li.querySelector('.up-progress');
  const total = up.total || up.file.size || 1;
  bar.value = up.state === 'done' ? 100 : Math.min(100, Math.round((up.sent / total) * 100));
  bar.hidden = up.state !== 'uploading';
  const status = li.querySelector('.up-status');
  status.textContent = up.state === 'uploading' ? `${bar.value}%` : up.state === 'done' ? 'Ready to send' : up.error;
  status.classList.toggle('error', up.state === 'failed');
  li.querySelector('.up-retry').hidden = up.state !== 'failed';
}

function removeUpload(up) {
  if (up.state === 'uploading' && up.handle) up.handle.abort();
  uploads = uploads.filter((u) => u !== up);
  renderUploads();
  ui.input.focus();
}

function clearUploads() {
  for (const up of uploads) if (up.state === 'uploading' && up.handle) up.handle.abort();
  uploads = [];
  renderUploads();
}

function uploadsBusy() {
  return uploads.some((u) => u.state === 'uploading');
}

function readyAttachments() {
  return uploads.filter((u) => u.state === 'done' && u.room === current).map((u) => u.att);
}

function updateSendState() {
  const over = textLength(ui.input.value) > MAX_TEXT;
  ui.send.disabled = over || uploadsBusy();
  ui.send.title = uploadsBusy() ? 'Wait for the uploads to finish' : '';
}

// Files of a message: images as previews, the rest as download links; both
// fetched with the token (the download route needs it) and never from a
// URL other than this origin's attachment route.
const previews = new Map(); // path -> Promise of a data: URL

function renderAttachments(msg, el) {
  // A message's files never change but by its deletion: an edit or a
  // reaction re-renders the message, and must not rebuild (and flicker)
  // its previews.
  const key = msg.deleted ? '' : msg.attachments.map((a) => a.url).join('\n');
  if (el.dataset.files === key) return;
  el.dataset.files = key;
  el.replaceChildren();
  el.hidden = msg.deleted || msg.attachments.length === 0;
  if (el.hidden) return;
  for (const a of msg.attachments) {
    const path = attachmentPath(a.url);
    if (path && isPreviewable(a.fileType)) {
      const fig = document.createElement('figure');
      fig.className = 'att-image loading';
      const img = document.createElement('img');
      img.alt = a.filename;
      img.decoding = 'async';
      const cap = document.createElement('figcaption');
      const link = fileLink(a, path);
      cap.append(link);
      fig.append(img, cap);
      loadPreview(path).then((src) => {
        // A preview grows the list: one read at its bottom stays there.
        const stick = msg.room === current && el.isConnected && (pinned || atBottom());
        img.src = src;
        fig.classList.remove('loading');
        if (stick) img.decode().catch(() => {}).then(() => { if (msg.room === current) scrollToBottom(); });
      }, () => {
        fig.classList.remove('loading');
        fig.classList.add('broken');
        img.remove();
      });
      el.append(fig);
    } else {
      el.append(fileLink(a, path));
    }
  }
}

function fileLink(a, path) {
  const link = document.createElement('a');
  link.className = 'att-file';
  link.href = '#';
  link.textContent = `${a.filename} (${formatSize(a.size)})`;
  link.title = `Download ${a.filename}`;
  if (!path) {
    link.removeAttribute('href');
    link.classList.add('unavailable');
    return link;
  }
  link.addEventListener('click', (ev) => {
    ev.preventDefault();
    downloadAttachment(a, path);
  });
  return link;
}

// loadPreview turns an image into a data: URL, which the page's
// Content-Security-Policy (img-src 'self' data:) lets an <img> show.
function loadPreview(path) {
  let p = previews.get(path);
  if (p) return p;
  p = authed((t) => api.download(t, path)).then((blob) => new Promise((resolve, reject) => {
    if (!isPreviewable(blob.type)) {
      reject(new Error('not an image'));
      return;
    }
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  }));
  p.catch(() => previews.delete(path)); // a failure may pass; try again next time
  previews.set(path, p);
  while (previews.size > PREVIEW_CACHE) previews.delete(previews.keys().next().value);
  return p;
}

async function downloadAttachment(a, path) {
  try {
    const blob = await authed((t) => api.download(t, path));
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    link.href = url;
    link.download = a.filename || 'file';
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    toast(`Could not download ${a.filename}: ${lowerFirst(refusal(err))}`, true);
  }
}

// Drops on the conversation and pastes into the composer upload files.
let dragDepth = 0;

function hasFiles(ev) {
  return !!ev.dataTransfer && [...ev.dataTransfer.types].includes('Files');
}

function wireFiles() {
  ui.attachBtn.addEventListener('click', () => ui.fileInput.click());
  ui.fileInput.addEventListener('change', () => {
    stageFiles([...ui.fileInput.files]);
    ui.fileInput.value = '';
    ui.input.focus();
  });
  ui.main.addEventListener('dragenter', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    dragDepth++;
    const room = rooms.get(current);
    ui.dropText.textContent = room ? `Drop files to send to ${room.info.type === 'direct' ? '@' : '#'}${roomLabel(room.info, room.name)}` : 'Drop files to upload';
    ui.dropZone.hidden = false;
  });
  ui.main.addEventListener('dragover', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
  });
  ui.main.addEventListener('dragleave', (ev) => {
    if (!hasFiles(ev)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) ui.dropZone.hidden = true;
  });
  ui.main.addEventListener('drop', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    dragDepth = 0;
    ui.dropZone.hidden = true;
    stageFiles([...ev.dataTransfer.files]);
  });
  // A file dropped beside the drop area must not replace the page.
  window.addEventListener('dragover', (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  window.addEventListener('drop', (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  ui.input.addEventListener('paste', (ev) => {
    const files = ev.clipboardData ? [...ev.clipboardData.files] : [];
    if (!files.length) return;
    ev.preventDefault();
    stageFiles(files);
  });
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
  if (changed) {
    stopTyping(true);
    endEdit();
    setReply(null);
    clearUploads();
    closeMentions();
    jumpGen++;
  }
  closePicker();
  current = name;
  localStorage.setItem(currentKey(me().id), name);
  const room = rooms.get(name);
  // Opening a room is looking at it: what it shows counts as read (the
  // read marker goes out once its newest message is on screen).
  lookingAt = name;
  renderRoomHead();
  renderRooms();
  renderMessages();
  renderMembers();
  renderTyping();
  ui.pill.hidden = true;
  scrollToBottom();
  if (!room.historyLoaded && !room.loading) loadLatest(room);
  if (changed && welcomed) refreshMembers(room); // its joined snapshot may have aged
  loadRoomDetails(room);
  setupPresencePoll();
  closeDrawers();
  if (focus) ui.input.focus();
  scheduleRead();
}

// addRoom adds a room to the list and joins it; info is the server's room
// record when we have it (created, accepted, opened), role ours in it.
function addRoom(name, info = null, role = '', { open = true } = {}) {
  if (!rooms.has(name)) {
    roomsEpoch++;
    rooms.set(name, newRoom(name));
    roomOrder.push(name);
    saveRoomNames();
    sendJoin(name);
  }
  if (info) applyRoomInfo(rooms.get(name), info, role);
  if (open) switchRoom(name, { focus: true });
  else renderRooms();
}

// removeRoom takes a room out of the list; it reports whether it was there.
function removeRoom(name) {
  if (name === GENERAL || !rooms.has(name)) return false;
  const room = rooms.get(name);
  roomsEpoch++;
  for (const msg of room.pending) pending.delete(msg.clientId);
  clearTimeout(room.rosterTimer);
  rooms.delete(name);
  roomOrder = roomOrder.filter((n) => n !== name);
  saveRoomNames();
  if (dialogRoom === name) closeDialogs();
  if (current === name) switchRoom(GENERAL);
  else renderRooms();
  return true;
}

// leaveRoom gives up the membership (the HTTP API; servers without it
// answer 404 and the connection's leave is all there is) and the room.
async function leaveRoom(name) {
  if (name === GENERAL) return;
  if (welcomed) conn.send({ type: 'leave', room: name });
  try {
    await authed((t) => api.leaveRoom(t, name));
  } catch (err) {
    if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 405)) {
      toast(`Could not leave #${name}: ${errText(err)}`, true);
      return;
    }
  }
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
  const prev = new Map(); // list -> the last element placed in it
  for (const name of roomOrder) {
    const room = rooms.get(name);
    let r = roomEls.get(name);
    if (!r) {
      r = buildRoomEl(name);
      roomEls.set(name, r);
    }
    const list = room.info.type === 'direct' ? ui.dmList : ui.roomList;
    const p = prev.get(list);
    const expected = p ? p.nextElementSibling : list.firstElementChild;
    if (expected !== r.li) list.insertBefore(r.li, expected);
    prev.set(list, r.li);
    updateRoomEl(room, r);
    total += room.unread;
  }
  ui.unreadBadge.hidden = total === 0;
  ui.unreadBadge.textContent = total > 99 ? '99+' : String(total);
  ui.unreadBadge.classList.toggle('mention', [...rooms.values()].some((r) => r.mentions > 0));
  const cur = rooms.get(current);
  document.title = (total ? `(${total}) ` : '') + `${cur && cur.info.type === 'direct' ? '@' : '#'}${cur ? roomLabel(cur.info, current) : current} · Aurora`;
}

function updateRoomEl(room, r) {
  const { name, info } = room;
  const isCurrent = name === current;
  const label = roomLabel(info, name);
  r.li.dataset.type = info.type;
  r.li.classList.toggle('current', isCurrent);
  r.li.classList.toggle('unread', room.unread > 0);
  if (isCurrent) r.btn.setAttribute('aria-current', 'page');
  else r.btn.removeAttribute('aria-current');
  r.icon.className = 'room-icon ' + info.type;
  r.icon.textContent = info.type === 'direct' ? '@' : info.type === 'private' ? '' : '#';
  if (r.label.textContent !== label) r.label.textContent = label;
  r.btn.title = info.topic || (info.type === 'direct' ? `Direct messages with ${label}` : `#${name}`);
  r.unread.hidden = room.unread === 0;
  r.unread.textContent = badgeText(room.unread);
  r.mention.hidden = room.mentions === 0;
  r.mention.textContent = '@' + badgeText(room.mentions);
  r.li.classList.toggle('mentioned', room.mentions > 0);
  const kind = info.type === 'direct' ? `direct messages with ${label}` : `${info.type === 'private' ? 'private room ' : ''}#${label}`;
  const counts = (room.unread ? `, ${badgeText(room.unread)} unread` : '')
    + (room.mentions ? `, ${badgeText(room.mentions)} mentioning you` : '');
  r.btn.setAttribute('aria-label', kind + counts);
  // One click leaves a public room; a private one is left from its
  // settings (coming back needs an invitation), a direct one is not left.
  r.leave.hidden = name === GENERAL || info.type !== 'public';
}

function buildRoomEl(name) {
  const li = document.createElement('li');
  li.className = 'room';
  li.dataset.room = name;
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'room-btn';
  const icon = document.createElement('span');
  icon.className = 'room-icon';
  icon.setAttribute('aria-hidden', 'true');
  const label = document.createElement('span');
  label.className = 'room-name';
  const mention = document.createElement('span');
  mention.className = 'room-mention';
  mention.setAttribute('aria-hidden', 'true');
  mention.hidden = true;
  const unread = document.createElement('span');
  unread.className = 'room-unread';
  unread.setAttribute('aria-hidden', 'true');
  btn.append(icon, label, mention, unread);
  btn.addEventListener('click', () => switchRoom(name, { focus: true }));
  const leave = document.createElement('button');
  leave.type = 'button';
  leave.className = 'room-leave';
  leave.setAttribute('aria-label', `Leave #${name}`);
  leave.title = `Leave #${name}`;
  leave.textContent = '×';
  leave.addEventListener('click', () => leaveRoom(name));
  li.append(btn, leave);
  return { li, btn, icon, label, unread, mention, leave };
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
  renderSeen(room);
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

// renderMembers shows who is online in the open room (presence) and, once
// the room's member list is loaded, everyone else under Offline; each with
// their role, and a click opens what one may do with them.
function renderMembers() {
  const room = rooms.get(current);
  if (!room) {
    ui.memberList.replaceChildren();
    ui.offlineList.replaceChildren();
    return;
  }
  const list = [...room.members].sort((a, b) => a[1].localeCompare(b[1]));
  syncMembers(ui.memberList, room, list.map(([uid, name]) => [uid, name]), true);
  let offline = [];
  if (room.roster && room.roster.size <= OFFLINE_SHOWN) {
    offline = [...room.roster.values()].filter((m) => !room.members.has(m.userId))
      .sort((a, b) => a.username.localeCompare(b.username));
  }
  syncMembers(ui.offlineList, room, offline.map((m) => [m.userId, m.username]), false);
  ui.offlineTitle.hidden = offline.length === 0;
  ui.offlineCount.textContent = String(offline.length);
  ui.memberCount.textContent = String(list.length);
  ui.membersToggleCount.textContent = `(${list.length})`;
  setupPresencePoll();
}

// memberEls keeps each list's entries by user: presence frames and member
// list reloads come often, and rebuilding every entry each time would take
// the keyboard focus (and a pointer's target) from under the user.
const memberEls = new Map(); // ul -> Map(userId -> {sig, li})

function syncMembers(ul, room, people, online) {
  const old = memberEls.get(ul) || new Map();
  const next = new Map();
  const want = people.map(([uid, name]) => {
    const m = room.roster && room.roster.get(uid);
    const sig = [room.name, name, m ? m.role : '', m && mutedNow(m) ? 'muted' : '', uid === me().id].join('|');
    let e = old.get(uid);
    if (!e || e.sig !== sig) e = { sig, li: memberEl(room, uid, name, online) };
    next.set(uid, e);
    return e.li;
  });
  memberEls.set(ul, next);
  const cur = ul.children;
  if (cur.length === want.length && want.every((li, i) => cur[i] === li)) return;
  ul.replaceChildren(...want);
}

function memberEl(room, uid, name, online) {
  const li = document.createElement('li');
  li.className = 'member' + (uid === me().id ? ' me-member' : '') + (online ? '' : ' offline');
  li.dataset.userId = uid;
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'member-btn';
  const av = document.createElement('span');
  av.className = 'avatar small ' + hue(uid);
  av.setAttribute('aria-hidden', 'true');
  av.textContent = initial(name);
  const n = document.createElement('span');
  n.className = 'member-name';
  n.textContent = name;
  btn.append(av, n);
  const m = room.roster && room.roster.get(uid);
  const role = m ? m.role : '';
  li.dataset.role = role;
  if (role === 'owner' || role === 'admin' || role === 'readonly') {
    const badge = document.createElement('span');
    badge.className = 'role-badge ' + role;
    badge.textContent = ROLE_LABEL[role];
    btn.append(badge);
  }
  if (m && mutedNow(m)) {
    const muted = document.createElement('span');
    muted.className = 'role-badge muted';
    muted.textContent = 'Muted';
    btn.append(muted);
  }
  if (online) {
    const dot = document.createElement('span');
    dot.className = 'member-status';
    dot.setAttribute('aria-hidden', 'true');
    btn.append(dot);
  }
  btn.setAttribute('aria-label', `${name}${role ? ', ' + ROLE_LABEL[role] : ''}${online ? ', online' : ', offline'}`);
  btn.addEventListener('click', () => openMemberDialog(room.name, uid, name));
  li.append(btn);
  return li;
}

function mutedNow(m) {
  const t = Date.parse(m.mutedUntil || '');
  return Number.isFinite(t) && t > Date.now();
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
  scheduleRead();
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

function toast(text, isError = false, ms = 6000) {
  // The same words once while they are on screen (a refused typing
  // indicator would otherwise say so every two seconds).
  for (const el of ui.toasts.children) if (el.textContent === text) return;
  const t = document.createElement('div');
  t.className = 'toast' + (isError ? ' error' : '');
  t.textContent = text;
  ui.toasts.append(t);
  setTimeout(() => t.remove(), ms);
  while (ui.toasts.children.length > 4) ui.toasts.firstElementChild.remove();
}

// ---- Composer --------------------------------------------------------------------

let typingRoom = '';
let typingSentAt = 0;
let typingIdle = 0;

function onInput() {
  autosize();
  updateCounter();
  updateMentions();
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
  updateSendState();
}

function onComposerSubmit(ev) {
  ev.preventDefault();
  // Surrounding blank lines and spaces carry nothing.
  const text = ui.input.value.trim();
  if (textLength(text) > MAX_TEXT) return;
  if (uploadsBusy()) {
    toast('Wait for the uploads to finish, then send.', true);
    return;
  }
  const attachments = readyAttachments();
  if (!text && !attachments.length) return;
  stopTyping(true);
  closeMentions();
  ui.input.value = '';
  autosize();
  const replyTo = replyTarget && replyTarget.room === current ? replyTarget.id : '';
  setReply(null);
  uploads = uploads.filter((u) => u.state !== 'done');
  renderUploads();
  updateCounter();
  sendMessage(text, { replyTo, attachments });
}

function onComposerKey(ev) {
  if (mentionKey(ev)) {
    ev.preventDefault();
    return;
  }
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
    ev.preventDefault();
    ui.composer.requestSubmit();
    return;
  }
  if (ev.key === 'ArrowUp' && !ui.input.value && !ev.shiftKey && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
    // Up on an empty composer edits our last message, as in most chats.
    const msg = lastOwnMessage();
    if (msg) {
      ev.preventDefault();
      startEdit(msg);
    }
    return;
  }
  if (ev.key === 'Escape' && replyTarget) {
    ev.preventDefault();
    ev.stopPropagation();
    setReply(null);
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

// ---- Rooms and people --------------------------------------------------------------

// refreshPeople reads our rooms and invitations again: on a rooms_changed
// frame (the server's word that an invitation came, a direct room was
// opened for us, another tab accepted an invitation, our role changed),
// on each welcome, and when the page becomes visible; never on a timer.
function refreshPeople() {
  if (!session) return;
  syncRooms();
  refreshInvites();
}

// applyRoomInfo records the server's room record r (and our role in it).
function applyRoomInfo(room, r, role = '') {
  if (!r || typeof r !== 'object') return;
  const info = room.info;
  if (typeof r.type === 'string' && r.type) info.type = r.type;
  if (typeof r.title === 'string') info.title = r.title;
  if (typeof r.topic === 'string') info.topic = r.topic;
  const rl = role || (typeof r.role === 'string' ? r.role : '');
  if (rl) info.role = rl;
  if (r.peer && typeof r.peer === 'object') {
    info.peer = { userId: String(r.peer.userId || ''), username: String(r.peer.username || '') };
  }
  if (room.name === current) renderRoomHead();
}

let syncing = null;
// syncRooms makes the list the server's GET /api/rooms: rooms we are a
// member of. Rooms we left or were removed from while away go; rooms
// opened for us come (and are joined). A server without the API, or one
// that cannot be reached, leaves the list as it is. At most one runs.
function syncRooms() {
  if (!syncing) {
    syncing = doSyncRooms().finally(() => { syncing = null; });
  }
  return syncing;
}

// roomsEpoch counts rooms added to and removed from the list here: an
// answer of GET /api/rooms that was asked before such a change may not
// know of it, and is not to undo it.
let roomsEpoch = 0;

async function doSyncRooms() {
  const s = session;
  const epoch = roomsEpoch;
  let res;
  try {
    res = await api.rooms(s.token, AbortSignal.timeout(SYNC_TIMEOUT_MS));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && session === s) endSession('Your session has ended. Log in again.');
    return;
  }
  if (session !== s || !res || !Array.isArray(res.rooms)) return;
  if (epoch !== roomsEpoch) {
    // Outdated: take only what it says of rooms we still have.
    for (const r of res.rooms) if (r && rooms.has(r.name)) applyRoomInfo(rooms.get(r.name), r);
    renderRooms();
    return;
  }
  const listed = new Set();
  let added = false;
  for (const r of res.rooms) {
    if (!r || typeof r.name !== 'string' || !ROOM_RE.test(r.name)) continue;
    listed.add(r.name);
    if (!rooms.has(r.name)) {
      rooms.set(r.name, newRoom(r.name));
      roomOrder.push(r.name);
      added = true;
      sendJoin(r.name);
    }
    applyRoomInfo(rooms.get(r.name), r);
    applyUnread(rooms.get(r.name), r);
  }
  for (const name of [...roomOrder]) {
    // A join on its way may not be listed yet.
    if (name !== GENERAL && !listed.has(name) && ![...joinRequests.values()].includes(name)) removeRoom(name);
  }
  if (added) saveRoomNames();
  renderRooms();
}

// loadRoomDetails fetches our standing in the room and its members.
async function loadRoomDetails(room) {
  try {
    const res = await authed((t) => api.room(t, room.name));
    if (rooms.get(room.name) !== room) return;
    room.serverAdmin = !!res.serverAdmin;
    applyRoomInfo(room, res.room, typeof res.role === 'string' ? res.role : '');
    if (typeof res.role === 'string') room.info.role = res.role;
    if (Array.isArray(res.members)) setRoster(room, res.members);
    else loadRoster(room);
  } catch (err) {
    // A server without the rooms API: the room is a plain public room.
    if (!(err instanceof ApiError) || err.status === 404 || err.status === 405) return;
    if (room.name === current && err.status !== 401) toast(`Could not load #${room.name}: ${errText(err)}`, true);
  }
  if (room.name === current) renderRoomHead();
}

async function loadRoster(room) {
  const gen = ++room.rosterGen;
  try {
    const res = await authed((t) => api.members(t, room.name));
    if (rooms.get(room.name) !== room || gen !== room.rosterGen) return;
    setRoster(room, res.members);
  } catch {
    // the online list still works; the next event or switch tries again
  }
}

function setRoster(room, list) {
  room.roster = new Map();
  for (const m of list || []) {
    if (!m || typeof m.userId !== 'string') continue;
    room.roster.set(m.userId, {
      userId: m.userId, username: String(m.username || ''), role: String(m.role || 'member'),
      mutedUntil: typeof m.mutedUntil === 'string' ? m.mutedUntil : '',
    });
  }
  const mine = room.roster.get(me().id);
  if (mine) room.info.role = mine.role;
  if (room.name === current) {
    renderMembers();
    renderRoomHead();
  }
  if (dialogRoom === room.name && memberDialogUser) refreshMemberDialog();
}

function scheduleRoster(room) {
  clearTimeout(room.rosterTimer);
  room.rosterTimer = setTimeout(() => {
    if (rooms.get(room.name) === room && (room.roster || room.name === current)) loadRoster(room);
  }, ROSTER_DEBOUNCE_MS);
}

// standing is what rooms.js needs to know of us in a room.
function standing(room) {
  return { role: room.info.role, serverAdmin: room.serverAdmin, type: room.info.type };
}

// renderRoomHead shows the open room's name, topic, our controls, and the
// composer as our role allows.
function renderRoomHead() {
  const room = rooms.get(current);
  if (!room) return;
  const label = roomLabel(room.info, room.name);
  const sigil = room.info.type === 'direct' ? '@' : '#';
  ui.roomTitle.textContent = label;
  ui.roomTitle.dataset.type = room.info.type;
  ui.roomTopic.textContent = room.info.topic;
  ui.roomTopic.title = room.info.topic;
  const st = standing(room);
  ui.inviteBtn.hidden = !canManageRoom(st);
  ui.settingsBtn.hidden = room.name === GENERAL && !canManageRoom(st) || room.info.type === 'direct';
  const writable = canSend(st);
  ui.input.disabled = !writable;
  ui.composerLabel.textContent = `Message ${sigil}${label}`;
  ui.input.placeholder = writable ? `Message ${sigil}${label}` : `You can only read ${sigil}${label}`;
}

// ---- Room events and removal ------------------------------------------------------

// isEvent: a room event frame; only they carry "event".
function isEvent(f) {
  return f.type === 'room_event' || (f.event !== undefined && f.event !== null && f.event !== '');
}

// flattenEvent: a live frame carries the event's fields at its top level;
// a stored one may carry them as an object or its JSON text under "event".
function flattenEvent(f) {
  let ev = f.event;
  if (typeof ev === 'string' && ev.startsWith('{')) {
    try {
      ev = JSON.parse(ev);
    } catch {
      ev = null;
    }
  }
  if (ev && typeof ev === 'object') return { ...f, ...ev, user: f.user, userId: f.userId };
  return f;
}

function onRoomEvent(f) {
  const room = rooms.get(f.room);
  if (!room) return;
  const ev = flattenEvent(f);
  addMessage(room, f, { live: true });
  const mine = ev.target === me().id;
  switch (ev.event) {
    case 'room_updated':
      applyRoomInfo(room, { title: ev.title, topic: ev.topic });
      renderRooms();
      return;
    case 'room_deleted':
      if (removeRoom(room.name)) toast(`#${room.name} was deleted by ${ev.user || 'its owner'}.`, true, 15000);
      return;
    case 'role_changed':
      if (mine && typeof ev.role === 'string') room.info.role = ev.role;
      break;
    case 'owner_transferred':
      if (mine) room.info.role = 'owner';
      else if (ev.userId === me().id) room.info.role = 'admin';
      break;
    default:
      break;
  }
  if (/^member_|^role_|^owner_/.test(String(ev.event))) scheduleRoster(room);
  if (room.name === current) renderRoomHead();
}

// onRemoved: the server took us out of a room (kicked, banned, the room
// deleted, or we left it elsewhere); say why, unless we did it here.
function onRemoved(f) {
  if (typeof f.room !== 'string') return;
  if (removeRoom(f.room) && f.reason !== 'left') {
    toast(removedText(f), true, 15000);
    announce(removedText(f));
  }
}

function buildSystemEl(msg) {
  const li = document.createElement('li');
  li.className = 'msg system';
  li.dataset.userId = '';
  const icon = document.createElement('span');
  icon.className = 'sys-icon';
  icon.setAttribute('aria-hidden', 'true');
  icon.textContent = '›';
  const text = document.createElement('span');
  text.className = 'sys-text';
  text.textContent = msg.text;
  const time = document.createElement('time');
  time.className = 'msg-time';
  const status = document.createElement('div');
  status.className = 'msg-status';
  li.append(icon, text, time, status);
  msg.el = li;
  updateMsgEl(msg);
  return li;
}

// ---- Dialogs ---------------------------------------------------------------------

let dialogRoom = ''; // the room an open dialog is about
let memberDialogUser = null; // {userId, username} of the member dialog

function openDialog(dlg, room = '') {
  closeDialogs();
  closeDrawers();
  dialogRoom = room;
  for (const e of dlg.querySelectorAll('.form-error, [role="status"]')) e.textContent = '';
  dlg.showModal();
}

function closeDialogs() {
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  dialogRoom = '';
  memberDialogUser = null;
}

// busy disables a dialog's buttons while its request runs.
async function busy(dlg, fn) {
  const buttons = [...dlg.querySelectorAll('button:not([data-close])')];
  for (const b of buttons) b.disabled = true;
  try {
    return await fn();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function refusal(err) {
  if (err instanceof ApiError) return httpRefusal(err.status, err.message);
  return 'Something went wrong. Try again.';
}

// debounce runs fn once input stopped for ms.
function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// Create a room.
function openCreateDialog() {
  openDialog($('create-dialog'));
  $('create-name').value = '';
  $('create-topic').value = '';
  $('create-public').checked = true;
  $('create-name').removeAttribute('aria-invalid');
  $('create-name').focus();
}

async function onCreateSubmit(ev) {
  ev.preventDefault();
  const dlg = $('create-dialog');
  const nameEl = $('create-name');
  const errEl = $('create-error');
  const name = nameEl.value.trim().replace(/^#/, '').toLowerCase();
  if (!ROOM_RE.test(name)) {
    errEl.textContent = name ? 'Room names are 1-64 characters of a-z, 0-9, _ and -.' : 'Enter a room name.';
    nameEl.setAttribute('aria-invalid', 'true');
    nameEl.focus();
    return;
  }
  nameEl.removeAttribute('aria-invalid');
  const type = $('create-private').checked ? 'private' : 'public';
  const topic = $('create-topic').value.trim();
  errEl.textContent = '';
  await busy(dlg, async () => {
    try {
      const res = await authed((t) => api.createRoom(t, { name, type, topic }));
      closeDialogs();
      addRoom(name, (res && res.room) || { type, topic }, 'owner');
      announce(`Created ${type === 'private' ? 'private room' : 'room'} #${name}.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        errEl.textContent = `A room named #${name} exists already. Pick another name.`;
        nameEl.setAttribute('aria-invalid', 'true');
        nameEl.focus();
      } else {
        errEl.textContent = refusal(err);
      }
    }
  });
}

// The directory of public rooms.
let dirQuery = '';
let dirCursor = '';
let dirGen = 0;

function openDirectory() {
  openDialog($('directory-dialog'));
  $('directory-q').value = '';
  loadDirectory(true);
  $('directory-q').focus();
}

async function loadDirectory(reset) {
  const list = $('directory-list');
  const status = $('directory-status');
  const errEl = $('directory-error');
  const more = $('directory-more');
  if (reset) {
    dirQuery = $('directory-q').value.trim();
    dirCursor = '';
    list.replaceChildren();
  }
  const gen = ++dirGen;
  status.textContent = 'Loading…';
  errEl.textContent = '';
  try {
    const res = await authed((t) => api.directory(t, { q: dirQuery, cursor: dirCursor }));
    if (gen !== dirGen) return;
    for (const r of (res && res.rooms) || []) {
      if (r && typeof r.name === 'string') list.append(directoryEl(r));
    }
    dirCursor = String((res && (res.cursor || res.nextCursor || res.next)) || '');
    more.hidden = !dirCursor;
    status.textContent = list.children.length ? '' : (dirQuery ? `No public room matches “${dirQuery}”.` : 'No public rooms yet.');
  } catch (err) {
    if (gen !== dirGen) return;
    status.textContent = '';
    errEl.textContent = refusal(err);
  }
}

function directoryEl(r) {
  const li = document.createElement('li');
  li.className = 'pick';
  li.dataset.room = r.name;
  const text = document.createElement('div');
  text.className = 'pick-text';
  const name = document.createElement('span');
  name.className = 'pick-name';
  name.textContent = `#${r.name}`;
  text.append(name);
  if (r.title && r.title !== r.name) {
    const title = document.createElement('span');
    title.className = 'pick-title';
    title.textContent = r.title;
    text.append(title);
  }
  if (r.topic) {
    const topic = document.createElement('span');
    topic.className = 'pick-topic';
    topic.textContent = r.topic;
    text.append(topic);
  }
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'btn';
  const joined = rooms.has(r.name);
  btn.textContent = joined ? 'Open' : 'Join';
  btn.setAttribute('aria-label', `${joined ? 'Open' : 'Join'} #${r.name}`);
  btn.addEventListener('click', () => {
    closeDialogs();
    addRoom(r.name, r);
  });
  li.append(text, btn);
  return li;
}

// A user picker: search users as one types; pick(user) for a click.
function userPicker(input, list, pick, label) {
  let gen = 0;
  const run = debounce(async () => {
    const q = input.value.trim();
    const g = ++gen;
    if (!q) {
      list.replaceChildren();
      return;
    }
    try {
      const res = await authed((t) => api.users(t, q));
      if (g !== gen) return;
      list.replaceChildren();
      for (const u of (res && res.users) || []) {
        if (!u || typeof u.username !== 'string' || u.id === me().id) continue;
        const li = document.createElement('li');
        li.className = 'pick';
        li.dataset.username = u.username;
        const av = document.createElement('span');
        av.className = 'avatar small ' + hue(String(u.id || u.username));
        av.setAttribute('aria-hidden', 'true');
        av.textContent = initial(u.username);
        const name = document.createElement('span');
        name.className = 'pick-name';
        name.textContent = u.username;
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'btn';
        btn.textContent = label(u);
        btn.setAttribute('aria-label', `${label(u)} ${u.username}`);
        btn.addEventListener('click', () => pick(u, btn));
        li.append(av, name, btn);
        list.append(li);
      }
      if (!list.children.length) {
        const li = document.createElement('li');
        li.className = 'pick empty';
        li.textContent = `No user matches “${q}”.`;
        list.append(li);
      }
    } catch {
      // the picker is a help: the username can still be typed
    }
  }, PICKER_DEBOUNCE_MS);
  input.addEventListener('input', run);
}

// Invite people to the open room.
function openInviteDialog() {
  const room = rooms.get(current);
  if (!room) return;
  openDialog($('invite-dialog'), room.name);
  $('invite-title').textContent = `Invite people to #${roomLabel(room.info, room.name)}`;
  $('invite-q').value = '';
  $('invite-users').replaceChildren();
  $('invite-link-row').hidden = true;
  $('invite-link').value = '';
  $('invite-active').replaceChildren();
  $('invite-active-title').hidden = true;
  $('invite-q').focus();
  loadRoomInvites(room.name);
}

// loadRoomInvites lists the room's open invitations and links, each with
// Revoke.
let roomInvitesGen = 0;
async function loadRoomInvites(name) {
  const list = $('invite-active');
  const gen = ++roomInvitesGen;
  let res;
  try {
    res = await authed((t) => api.roomInvites(t, name));
  } catch {
    return; // the dialog works without the list
  }
  // Only the newest answer: an older one may list what was revoked since.
  if (dialogRoom !== name || gen !== roomInvitesGen) return;
  list.replaceChildren();
  const now = Date.now();
  for (const inv of (res && res.invites) || []) {
    if (!inv || typeof inv.token !== 'string' || inv.revoked) continue;
    const exp = Date.parse(inv.expiresAt || '');
    if (Number.isFinite(exp) && exp <= now) continue;
    if (inv.maxUses > 0 && inv.uses >= inv.maxUses) continue;
    list.append(roomInviteEl(name, inv));
  }
  $('invite-active-title').hidden = list.children.length === 0;
}

function roomInviteEl(name, inv) {
  const li = document.createElement('li');
  li.className = 'pick';
  li.dataset.token = inv.token;
  const text = document.createElement('span');
  text.className = 'pick-text';
  const what = inv.userId ? 'Invitation of one user' : 'Link';
  const uses = inv.userId ? '' : inv.maxUses > 0 ? `, used ${inv.uses || 0} of ${inv.maxUses}` : `, used ${inv.uses || 0}`;
  const exp = Date.parse(inv.expiresAt || '');
  text.textContent = `${what}${uses}${Number.isFinite(exp) ? `, until ${formatTime(exp)}` : ''}`;
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'btn subtle';
  btn.textContent = 'Revoke';
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      await authed((t) => api.revokeInvite(t, inv.token));
      li.remove();
      $('invite-active-title').hidden = $('invite-active').children.length === 0;
      loadRoomInvites(name);
      $('invite-status').textContent = inv.userId ? 'Invitation revoked.' : 'Link revoked: it no longer works.';
    } catch (err) {
      btn.disabled = false;
      $('invite-error').textContent = `Could not revoke: ${lowerFirst(refusal(err))}`;
    }
  });
  li.append(text, btn);
  return li;
}

async function inviteUser(u, btn) {
  const name = dialogRoom;
  const status = $('invite-status');
  const errEl = $('invite-error');
  errEl.textContent = '';
  btn.disabled = true;
  try {
    await authed((t) => api.inviteUser(t, name, u.username));
    status.textContent = `Invited ${u.username} to #${name}.`;
    btn.textContent = 'Invited';
    loadRoomInvites(name);
  } catch (err) {
    btn.disabled = false;
    errEl.textContent = `Could not invite ${u.username}: ${lowerFirst(refusal(err))}`;
  }
}

async function onInviteLinkSubmit(ev) {
  ev.preventDefault();
  const name = dialogRoom;
  const dlg = $('invite-dialog');
  const errEl = $('invite-error');
  errEl.textContent = '';
  const expiresIn = Number($('invite-expires').value) || 0;
  const maxUses = Number($('invite-uses').value) || 0;
  await busy(dlg, async () => {
    try {
      const res = await authed((t) => api.inviteLink(t, name, { maxUses, expiresIn }));
      const token = res && res.invite && res.invite.token;
      if (typeof token !== 'string' || !token) throw new Error('no token');
      $('invite-link').value = inviteURL(location.origin, token);
      $('invite-link-row').hidden = false;
      $('invite-status').textContent = 'Anyone with this link can join #' + name
        + (maxUses ? `, ${maxUses === 1 ? 'once' : maxUses + ' times'}` : '')
        + ', until it expires.';
      $('invite-link').select();
      loadRoomInvites(name);
    } catch (err) {
      errEl.textContent = `Could not create a link: ${lowerFirst(refusal(err))}`;
    }
  });
}

async function copyInviteLink() {
  const input = $('invite-link');
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    $('invite-status').textContent = 'Link copied.';
  } catch {
    // Plain http on another host is not a secure context: no clipboard API.
    $('invite-status').textContent = 'Press Ctrl+C (⌘C) to copy the selected link.';
  }
}

function lowerFirst(s) {
  return s ? s[0].toLowerCase() + s.slice(1) : s;
}

// Pending invitations, in the sidebar.
let inviteGen = 0;
async function refreshInvites() {
  const gen = ++inviteGen;
  let res;
  try {
    res = await authed((t) => api.invites(t));
  } catch {
    return; // a server without invitations, or offline: nothing to show
  }
  if (gen !== inviteGen || !session) return;
  const list = (res && Array.isArray(res.invites) ? res.invites : [])
    .filter((inv) => inv && typeof inv.token === 'string' && inviteRoom(inv));
  renderInvites(list);
}

function renderInvites(list) {
  ui.invitesList.replaceChildren();
  for (const inv of list) {
    const room = inviteRoom(inv);
    const from = inviteFrom(inv);
    const li = document.createElement('li');
    li.className = 'invite';
    li.dataset.room = room;
    const text = document.createElement('span');
    text.className = 'invite-text';
    const name = document.createElement('strong');
    name.textContent = `#${room}`;
    text.append(name, document.createTextNode(from ? ` from ${from}` : ''));
    const accept = document.createElement('button');
    accept.type = 'button';
    accept.className = 'btn primary small accept';
    accept.textContent = 'Accept';
    accept.setAttribute('aria-label', `Accept the invitation to #${room}`);
    const decline = document.createElement('button');
    decline.type = 'button';
    decline.className = 'btn subtle small decline';
    decline.textContent = 'Decline';
    decline.setAttribute('aria-label', `Decline the invitation to #${room}`);
    accept.addEventListener('click', () => answerInvite(inv, true, li));
    decline.addEventListener('click', () => answerInvite(inv, false, li));
    const row = document.createElement('div');
    row.className = 'invite-actions';
    row.append(accept, decline);
    li.append(text, row);
    ui.invitesList.append(li);
  }
  ui.invitesSection.hidden = list.length === 0;
}

async function answerInvite(inv, yes, li) {
  const room = inviteRoom(inv);
  for (const b of li.querySelectorAll('button')) b.disabled = true;
  try {
    const res = await authed((t) => (yes ? api.acceptInvite(t, inv.token) : api.declineInvite(t, inv.token)));
    li.remove();
    ui.invitesSection.hidden = ui.invitesList.children.length === 0;
    if (yes) {
      const r = (res && res.room) || { name: room };
      addRoom(typeof r.name === 'string' ? r.name : room, r);
      announce(`Joined #${room}.`);
    }
  } catch (err) {
    for (const b of li.querySelectorAll('button')) b.disabled = false;
    toast(`Could not ${yes ? 'accept' : 'decline'} the invitation to #${room}: ${lowerFirst(refusal(err))}`, true);
    refreshInvites();
  }
}

// acceptInviteFromURL accepts the invite link the page was opened with
// (<origin>/#invite=<token>), once logged in, and forgets the fragment.
async function acceptInviteFromURL() {
  const token = inviteToken(location.hash);
  if (!token || !session) return;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    const res = await authed((t) => api.acceptInvite(t, token));
    const r = res && res.room;
    if (!r || typeof r.name !== 'string' || !ROOM_RE.test(r.name)) throw new Error('no room');
    addRoom(r.name, r);
    toast(`You joined #${roomLabel(null, r.name)}.`);
  } catch (err) {
    const why = err instanceof ApiError && err.status === 404
      ? 'the link is invalid, expired or used up.'
      : lowerFirst(refusal(err));
    toast(`Could not accept the invitation: ${why}`, true, 15000);
  }
}

// Direct rooms.
function openDMDialog() {
  openDialog($('dm-dialog'));
  $('dm-user').value = '';
  $('dm-users').replaceChildren();
  $('dm-user').focus();
}

async function startDM(username, errEl = null) {
  try {
    const res = await authed((t) => api.openDM(t, username));
    const r = res && res.room;
    if (!r || typeof r.name !== 'string' || !ROOM_RE.test(r.name)) throw new Error('no room');
    closeDialogs();
    addRoom(r.name, { ...r, type: 'direct' }, r.role || 'member');
    return true;
  } catch (err) {
    const why = err instanceof ApiError && err.status === 404 ? `There is no user named ${username}.` : refusal(err);
    if (errEl) errEl.textContent = why;
    else toast(`Could not open a conversation with ${username}: ${lowerFirst(why)}`, true);
    return false;
  }
}

async function onDMSubmit(ev) {
  ev.preventDefault();
  const username = $('dm-user').value.trim();
  const errEl = $('dm-error');
  if (!USERNAME_RE.test(username)) {
    errEl.textContent = username ? 'Usernames are 3-32 characters of letters, digits, _ . and -.' : 'Enter a username.';
    $('dm-user').focus();
    return;
  }
  if (username.toLowerCase() === me().username.toLowerCase()) {
    errEl.textContent = 'That is you. Pick someone else.';
    return;
  }
  errEl.textContent = '';
  await busy($('dm-dialog'), () => startDM(username, errEl));
}

// Room settings: title and topic (admins), leave, delete (the owner).
let deleteArmed = false;
let leaveArmed = false;

function openSettings() {
  const room = rooms.get(current);
  if (!room) return;
  openDialog($('settings-dialog'), room.name);
  const st = standing(room);
  const manage = canManageRoom(st);
  $('settings-title').textContent = `#${room.name} settings`;
  $('settings-info').textContent = `${room.info.type === 'private' ? 'Private: invisible to others, by invitation only.' : 'Public: listed in the directory, anyone may join.'}`
    + (room.info.role ? ` You are ${ROLE_LABEL[room.info.role] ? ROLE_LABEL[room.info.role].toLowerCase() : room.info.role}${room.serverAdmin ? ', and a server administrator' : ''}.` : '');
  $('settings-name').value = room.info.title;
  $('settings-topic').value = room.info.topic;
  for (const id of ['settings-name', 'settings-topic']) $(id).disabled = !manage;
  $('settings-save').hidden = !manage;
  $('settings-delete').hidden = !canDeleteRoom(st);
  $('settings-leave').hidden = room.name === GENERAL;
  deleteArmed = false;
  leaveArmed = false;
  $('settings-delete').textContent = 'Delete room';
  $('settings-leave').textContent = 'Leave room';
  (manage ? $('settings-name') : $('settings-dialog').querySelector('[data-close]')).focus();
}

async function onSettingsSubmit(ev) {
  ev.preventDefault();
  const name = dialogRoom;
  const room = rooms.get(name);
  if (!room) return;
  const title = $('settings-name').value.trim();
  const topic = $('settings-topic').value.trim();
  const errEl = $('settings-error');
  errEl.textContent = '';
  await busy($('settings-dialog'), async () => {
    try {
      const res = await authed((t) => api.updateRoom(t, name, { title, topic }));
      applyRoomInfo(room, (res && res.room) || { title, topic });
      renderRooms();
      closeDialogs();
      announce(`Saved the settings of #${name}.`);
    } catch (err) {
      errEl.textContent = refusal(err);
    }
  });
}

async function onSettingsDelete() {
  const name = dialogRoom;
  const btn = $('settings-delete');
  if (!deleteArmed) {
    deleteArmed = true;
    btn.textContent = `Delete #${name} for everyone`;
    $('settings-error').textContent = 'Its messages and members go too. Click again to delete.';
    return;
  }
  await busy($('settings-dialog'), async () => {
    try {
      await authed((t) => api.deleteRoom(t, name));
      closeDialogs();
      removeRoom(name);
      toast(`Deleted #${name}.`);
    } catch (err) {
      $('settings-error').textContent = refusal(err);
    }
  });
}

async function onSettingsLeave() {
  const name = dialogRoom;
  const room = rooms.get(name);
  if (!room) return;
  if (room.info.type === 'private' && !leaveArmed) {
    leaveArmed = true;
    $('settings-leave').textContent = `Leave #${name}`;
    $('settings-error').textContent = 'Coming back takes a new invitation. Click again to leave.';
    return;
  }
  closeDialogs();
  await leaveRoom(name);
}

// A member: a direct message, and moderation where our role allows it.
function openMemberDialog(roomName, userId, username) {
  openDialog($('member-dialog'), roomName);
  memberDialogUser = { userId, username };
  $('member-reason').value = '';
  refreshMemberDialog();
  const first = $('member-dialog').querySelector('button:not([hidden])');
  if (first) first.focus();
}

function refreshMemberDialog() {
  const room = rooms.get(dialogRoom);
  const u = memberDialogUser;
  if (!room || !u) return;
  const m = room.roster ? room.roster.get(u.userId) : null;
  const role = m ? m.role : '';
  $('member-title').textContent = u.username;
  $('member-avatar').className = 'avatar ' + hue(u.userId);
  $('member-avatar').textContent = initial(u.username);
  $('member-role').textContent = (role ? `${ROLE_LABEL[role] || role} of #${room.name}` : `In #${room.name}`)
    + (m && mutedNow(m) ? ` · muted${untilShort(m.mutedUntil)}` : '');
  const self = u.userId === me().id;
  $('member-dm').hidden = self || room.info.type === 'direct';
  const acts = memberActions(standing(room), { userId: u.userId, role: role || 'member' }, me().id);
  // Everyone is always in general: it has bans, not kicks.
  if (room.name === GENERAL) acts.kick = false;
  $('member-mod').hidden = !(acts.kick || acts.ban || acts.mute || acts.roles.length);
  $('member-kick').hidden = !acts.kick;
  $('member-ban').hidden = !acts.ban;
  $('member-ban-for').hidden = !acts.ban;
  $('member-mute-form').hidden = !acts.mute;
  $('member-role-form').hidden = acts.roles.length === 0;
  const sel = $('member-role-select');
  sel.replaceChildren();
  const choose = document.createElement('option');
  choose.value = '';
  choose.textContent = 'Choose a role…';
  sel.append(choose);
  for (const r of acts.roles) {
    const o = document.createElement('option');
    o.value = r;
    o.textContent = r === 'owner' ? 'Owner (hand the room over)' : ROLE_LABEL[r];
    sel.append(o);
  }
}

function untilShort(iso) {
  const t = Date.parse(iso || '');
  if (!Number.isFinite(t)) return '';
  return ` until ${formatTime(t)}`;
}

// moderate runs one moderation request from the member dialog and says
// what happened there.
async function moderate(what, call, done) {
  const room = rooms.get(dialogRoom);
  const u = memberDialogUser;
  if (!room || !u) return;
  const name = room.name;
  $('member-error').textContent = '';
  $('member-status').textContent = '';
  await busy($('member-dialog'), async () => {
    try {
      await authed((t) => call(t, name, u));
      $('member-status').textContent = done(u.username, name);
      scheduleRoster(room);
    } catch (err) {
      $('member-error').textContent = `Could not ${what} ${u.username}: ${lowerFirst(refusal(err))}`;
    }
  });
}

function wirePeople() {
  for (const d of document.querySelectorAll('dialog')) {
    d.addEventListener('click', (ev) => {
      if (ev.target === d || ev.target.closest('[data-close]')) closeDialogs();
    });
    d.addEventListener('close', () => {
      if (!document.querySelector('dialog[open]')) {
        dialogRoom = '';
        memberDialogUser = null;
      }
    });
  }
  ui.createRoomBtn.addEventListener('click', openCreateDialog);
  $('create-form').addEventListener('submit', onCreateSubmit);
  $('create-name').addEventListener('input', () => {
    $('create-error').textContent = '';
    $('create-name').removeAttribute('aria-invalid');
  });
  ui.browseBtn.addEventListener('click', openDirectory);
  $('directory-q').addEventListener('input', debounce(() => loadDirectory(true), PICKER_DEBOUNCE_MS));
  $('directory-more').addEventListener('click', () => loadDirectory(false));
  ui.inviteBtn.addEventListener('click', openInviteDialog);
  $('invite-user-form').addEventListener('submit', (ev) => ev.preventDefault());
  userPicker($('invite-q'), $('invite-users'), inviteUser, () => 'Invite');
  $('invite-link-form').addEventListener('submit', onInviteLinkSubmit);
  $('invite-link-copy').addEventListener('click', copyInviteLink);
  ui.newDmBtn.addEventListener('click', openDMDialog);
  $('dm-form').addEventListener('submit', onDMSubmit);
  userPicker($('dm-user'), $('dm-users'), (u) => startDM(u.username, $('dm-error')), () => 'Message');
  ui.settingsBtn.addEventListener('click', openSettings);
  $('settings-form').addEventListener('submit', onSettingsSubmit);
  $('settings-delete').addEventListener('click', onSettingsDelete);
  $('settings-leave').addEventListener('click', onSettingsLeave);
  $('member-dm').addEventListener('click', () => {
    const u = memberDialogUser;
    if (u) startDM(u.username);
  });
  $('member-role-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const role = $('member-role-select').value;
    if (!role) {
      $('member-error').textContent = 'Choose the new role first.';
      return;
    }
    moderate('change the role of', (t, room, u) => api.setRole(t, room, u.userId, role),
      (who) => (role === 'owner' ? `${who} owns the room now.` : `${who} is ${ROLE_LABEL[role].toLowerCase()} now.`));
  });
  $('member-mute-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const until = rfc3339After(Number($('member-mute-for').value));
    moderate('mute', (t, room, u) => api.mute(t, room, u.userId, until),
      (who) => `Muted ${who}${untilShort(until)}.`);
  });
  $('member-remove-form').addEventListener('submit', (ev) => ev.preventDefault());
  $('member-kick').addEventListener('click', () => {
    const reason = $('member-reason').value.trim();
    moderate('kick', (t, room, u) => api.kick(t, room, u.userId, reason),
      (who, room) => `Kicked ${who} from #${room}.`);
  });
  $('member-ban').addEventListener('click', () => {
    const reason = $('member-reason').value.trim();
    const expiresAt = rfc3339After(Number($('member-ban-for').value));
    moderate('ban', (t, room, u) => api.ban(t, room, u.userId, reason, expiresAt),
      (who, room) => `Banned ${who} from #${room}${expiresAt ? untilShort(expiresAt) : ' for good'}.`);
  });
  window.addEventListener('hashchange', () => {
    if (session && inviteToken(location.hash)) acceptInviteFromURL();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) lookingAt = '';
    if (!document.hidden && session && welcomed) refreshPeople();
    if (!document.hidden) scheduleRead();
  });
}

function wireLife() {
  wireFiles();
  ui.searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    openSearch(ui.searchQ.value.trim());
  });
  $('search-dialog-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    runSearch(true);
  });
  $('search-more').addEventListener('click', () => runSearch(false));
  $('delete-form').addEventListener('submit', onDeleteSubmit);
  // The close event comes a task later: a dialog opened again meanwhile
  // keeps its message.
  $('delete-dialog').addEventListener('close', () => {
    if (!$('delete-dialog').open) deleteTarget = null;
  });
  ui.replyCancel.addEventListener('click', () => {
    setReply(null);
    ui.input.focus();
  });
  ui.input.addEventListener('click', updateMentions);
  ui.input.addEventListener('blur', () => setTimeout(() => {
    if (document.activeElement !== ui.input) closeMentions();
  }, 0));
  document.addEventListener('click', (ev) => {
    if (!ui.reactPicker.hidden && !ui.reactPicker.contains(ev.target)) closePicker();
  });
  ui.reactPicker.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      closePicker();
    } else if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
      const items = [...ui.reactPicker.querySelectorAll('button')];
      const i = items.indexOf(document.activeElement);
      const j = (i + (ev.key === 'ArrowRight' ? 1 : -1) + items.length) % items.length;
      items[j].focus();
      ev.preventDefault();
    }
  });
  // Reading follows where the user looks: a blurred window reads nothing
  // until it is focused again.
  window.addEventListener('blur', () => { lookingAt = ''; });
  window.addEventListener('focus', () => scheduleRead());
}

// ---- Start -----------------------------------------------------------------------

function wire() {
  wirePeople();
  wireLife();
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
