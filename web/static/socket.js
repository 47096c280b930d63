// The WebSocket to the chat role, with reconnection.
//
// The token travels as a subprotocol ("aurora.bearer.<jwt>" next to
// "aurora.v1"), never in the URL, so it stays out of access logs and
// browser history. A closed connection is retried with exponential backoff
// and jitter, so that a restarted server is not hit by every client at the
// same instant; the page decides what to re-send once "welcome" arrives.

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  SHUTDOWN: 1001, // server going away: reconnect
  POLICY: 1008, // too many invalid frames
  TOKEN_EXPIRED: 4001, // log in again
  REVOKED: 4003, // the account was disabled or its tokens revoked: log in again
  SLOW_CONSUMER: 4008, // we did not read fast enough: reconnect
});

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10000;
// A connection must stay up this long before the backoff starts over, so a
// server that accepts and then drops at once is not hammered.
const STABLE_AFTER_MS = 3000;
// The client pings when it heard nothing for PING_EVERY_MS and gives the
// connection up when the pong (or anything) does not follow in PONG_WAIT_MS:
// a dead network does not always close a WebSocket promptly.
const PING_EVERY_MS = 25000;
const PONG_WAIT_MS = 10000;

export function backoffDelay(attempt) {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 10));
  // "Equal jitter": half fixed, half random.
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

export class Connection {
  // handlers: onOpen(), onFrame(frame), onClose({code, reason, opened}),
  // onState(state, detail). state is "connecting", "online",
  // "reconnecting" (detail.at: time of the next attempt) or "stopped".
  constructor(url, token, handlers) {
    this.url = url;
    this.token = token;
    this.h = handlers;
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.retryTimer = 0;
    this.stableTimer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.onOnline = () => this.retryNow();
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  // stop closes the connection for good (log out, token expired).
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      detach(ws);
      ws.close(CloseCode.NORMAL, 'bye');
    }
    this.h.onState('stopped');
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // send writes a frame when the connection is open, and reports whether
  // it did.
  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // retryNow skips the remaining backoff wait.
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  // welcomed is called by the page once the server greeted us: the
  // connection is good.
  welcomed() {
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_AFTER_MS);
  }

  connect() {
    this.h.onState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url, ['aurora.v1', 'aurora.bearer.' + this.token]);
    } catch (err) {
      this.closed({ code: 1006, reason: String(err), opened: false });
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.armPing();
      this.h.onState('online');
      this.h.onOpen();
    };
    ws.onmessage = (ev) => {
      this.armPing();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return; // not ours to fix; the server never sends this
      }
      if (frame && typeof frame === 'object') this.h.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.closed({ code: ev.code, reason: ev.reason, opened });
    };
    ws.onerror = () => {
      // onclose follows with the details.
    };
  }

  closed(info) {
    this.ws = null;
    this.clearTimers();
    this.h.onClose(info);
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt++);
    this.h.onState('reconnecting', { at: Date.now() + delay, code: info.code });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  armPing() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = setTimeout(() => {
      if (!this.send({ type: 'ping' })) return;
      this.pongTimer = setTimeout(() => this.abandon(), PONG_WAIT_MS);
    }, PING_EVERY_MS);
  }

  // abandon gives up a connection that stopped answering, without waiting
  // for a close handshake that may never come.
  abandon() {
    const ws = this.ws;
    if (!ws) return;
    detach(ws);
    try {
      ws.close(4000, 'no pong');
    } catch {
      // closing a dead socket may throw; it is gone either way
    }
    this.closed({ code: 1006, reason: 'no answer from the server', opened: true });
  }

  clearTimers() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.stableTimer);
  }
}

function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}
