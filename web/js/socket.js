// One WebSocket for every order on the page, reconnecting with backoff.
//
// The socket knows nothing about orders: on every (re)open it calls `onOpen`,
// and the app resubscribes each open order with its last contiguous seq, so a
// reconnect neither loses nor repeats an event (the server replays every event
// after `afterSeq`; the order card drops anything it has already seen).

import { apiUrl, getApiKey } from './api.js';

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15000;
// Once the server has shown that it pings, a socket silent for this long is
// presumed dead (a half-open TCP connection never fires `close` by itself).
const SILENCE_LIMIT_MS = 60000;
// The gateway closes a socket over its limits at once: 1013 (the gateway is full), 4429 (this
// client holds too many sockets). The socket did open, so the backoff would start over each time;
// instead it keeps growing until the gateway serves a message again.
const LIMIT_CLOSE_CODES = new Set([1013, 4429]);

/** Exponential backoff with "equal jitter": half fixed, half random. */
export function backoffDelay(attempt, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * The WebSocket address, same origin. Browsers cannot set an Authorization
 * header on a WebSocket, so an API key (when one is set) travels as the
 * `apiKey` query parameter.
 */
export function socketUrl() {
  const url = apiUrl('api/orders/ws');
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const key = getApiKey();
  if (key) url.searchParams.set('apiKey', key);
  return url.href;
}

export class OrderSocket {
  /**
   * @param {object} handlers
   * @param {(msg: object) => void} handlers.onMessage  every parsed message but pings
   * @param {() => void} handlers.onOpen                after each successful (re)connect
   * @param {(state: string, retryAt: number|null) => void} handlers.onStateChange
   *        state: 'connecting' | 'connected' | 'reconnecting'
   * @param {(event: CloseEvent) => void} [handlers.onClose]
   */
  constructor({ onMessage, onOpen, onStateChange, onClose = () => {} }) {
    this.handlers = { onMessage, onOpen, onStateChange, onClose };
    this.ws = null;
    this.attempt = 0; // consecutive failed attempts, drives the backoff
    this.timer = null;
    this.state = 'connecting';
    this.retryAt = null;
    this.serverPings = false;
    this.lastMessageAt = 0;
    this.refusals = 0; // consecutive closes for a limit, see LIMIT_CLOSE_CODES
    this.watchdog = setInterval(() => this.checkSilence(), 5000);
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.setState(this.attempt === 0 && this.state !== 'reconnecting' ? 'connecting' : 'reconnecting', null);

    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.serverPings = false;

    // Every handler checks `ws === this.ws`: a socket we have abandoned
    // (restart, watchdog) must not touch the state of its successor.
    ws.addEventListener('open', () => {
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.lastMessageAt = Date.now();
      this.setState('connected', null);
      this.handlers.onOpen();
    });
    ws.addEventListener('message', (event) => {
      if (ws !== this.ws) return;
      this.lastMessageAt = Date.now();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return; // not JSON: not ours to interpret
      }
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'ping') {
        this.serverPings = true;
        this.send({ action: 'pong' });
        return;
      }
      this.refusals = 0;
      this.handlers.onMessage(msg);
    });
    ws.addEventListener('close', (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (LIMIT_CLOSE_CODES.has(event.code)) {
        this.refusals += 1;
        this.attempt = this.refusals;
      }
      this.handlers.onClose(event);
      this.scheduleReconnect();
    });
    // 'error' is always followed by 'close', which does the work.
  }

  /** Send a JSON message; false when the socket is not open (the caller relies on onOpen). */
  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  scheduleReconnect() {
    clearTimeout(this.timer);
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting', this.retryAt);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Skip the remaining backoff (e.g. the browser came back online). */
  reconnectNow() {
    if (this.ws !== null) return; // open or already connecting
    this.connect();
  }

  /** Drop the current socket and connect afresh (e.g. after the API key changed). */
  restart() {
    this.abandon();
    this.attempt = 0;
    this.connect();
  }

  /** Forget the current socket without waiting for its close handshake. */
  abandon() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000, 'client reconnect');
      } catch {
        /* already closed */
      }
    }
  }

  checkSilence() {
    if (this.isOpen && this.serverPings && Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) {
      this.abandon();
      this.handlers.onClose({ code: 4000, reason: 'no message from the server' });
      this.scheduleReconnect();
    }
  }

  setState(state, retryAt) {
    this.state = state;
    this.retryAt = retryAt;
    this.handlers.onStateChange(state, retryAt);
  }
}
