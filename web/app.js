// Entry point: wires the form, the order cards, the history table and the
// one WebSocket together. Each piece lives in its own module under js/.
//
// Submitting: over the socket (`execute`) when it is open, so the order is
// followed on the same socket; otherwise POST, then `subscribe`. Either way
// the request carries a fresh idempotency key, so if the socket dies before
// the engine answers, re-sending the same order by POST cannot create a
// second one.

import { ApiError, api, getApiKey, newIdempotencyKey, setApiKey } from './js/api.js';
import { byId, h, replaceChildren } from './js/dom.js';
import { OrderForm, TokenBook } from './js/form.js';
import { STATUSES } from './js/format.js';
import { HistoryTable, fillStatusFilter } from './js/history.js';
import { OrderCard } from './js/order-card.js';
import { OrderSocket, backoffDelay } from './js/socket.js';

const FOLLOWED_KEY = 'orderengine.followed'; // sessionStorage: cards survive a reload of the tab
const MAX_CARDS = 30; // older finished cards are dropped beyond this
const EXECUTE_TIMEOUT_MS = 8000; // no answer to `execute` by then → retry by POST, same key
const SUBSCRIBE_CHECK_MS = 2000; // no event after `accepted` by then → subscribe explicitly
const AUTH_CLOSE_CODES = new Set([1008, 4001, 4401, 4403]);
// Errors that end one subscription but not the socket: follow the order again from its last seq,
// after a backoff (the engine could not read the order's history for now, or this socket follows
// as many orders as it may). Limits on sockets close the socket instead (1013, 4429), and
// OrderSocket reconnects with backoff and resubscribes every order by seq.
const RESUBSCRIBE_CODES = new Set(['catchup_failed', 'too_many_subscriptions']);

const els = {
  cluster: byId('cluster'),
  connection: byId('connection'),
  connectionText: byId('connection-text'),
  connectionRetry: byId('connection-retry'),
  orders: byId('orders'),
  ordersEmpty: byId('orders-empty'),
  ordersHeading: byId('orders-heading'),
  submitStatus: byId('submit-status'),
  apiKeyPanel: byId('api-key-panel'),
  apiKeyToggle: byId('api-key-toggle'),
  apiKeyForm: byId('api-key-form'),
  apiKeyInput: byId('api-key'),
  apiKeyClear: byId('api-key-clear'),
  apiKeyMessage: byId('api-key-message'),
};

const state = {
  book: new TokenBook([]),
  explorer: null, // "https://…/tx/{sig}?cluster=devnet", or null on the sim chain
  cards: new Map(), // orderId → OrderCard, oldest first
  pendingExecute: null, // the one `execute` awaiting its `accepted`/`error`
  cooldownUntil: 0, // after a 503: no submit before this time (ms)
  retryTicker: null, // interval updating the "reconnecting in N s" countdown
};

/** Thrown when the socket could not deliver an `execute`: the caller falls back to POST. */
class SocketLost extends Error {}

// ---- wiring -----------------------------------------------------------------

const socket = new OrderSocket({
  onMessage: handleSocketMessage,
  onOpen: resubscribeAll,
  onStateChange: showConnection,
  onClose: handleSocketClose,
});

const form = new OrderForm(byId('order-form'), {
  onSubmit: submitOrder,
  getBook: () => state.book,
});

const history = new HistoryTable(
  {
    table: byId('history-table'),
    body: byId('history-body'),
    filter: byId('history-filter'),
    more: byId('history-more'),
    refresh: byId('history-refresh'),
    status: byId('history-status'),
  },
  { onView: viewOrder, onCancel: cancelOrder, onError: handleAuthError },
);

// ---- quote, then execute that quote; cancelling a resting order ------------------

const quoteEls = {
  panel: byId('quote-preview'),
  body: byId('quote-body'),
  execute: byId('execute-quote'),
  discard: byId('discard-quote'),
};
let shownQuote = null; // { quote, body, tokens } while a preview is shown

byId('preview-quote').addEventListener('click', previewQuote);
quoteEls.discard.addEventListener('click', () => showQuote(null));
quoteEls.execute.addEventListener('click', executeQuote);

async function previewQuote() {
  form.showGeneral('');
  const result = form.validate();
  if (!result) return;
  if (result.body.type && result.body.type !== 'market') {
    form.showServerError('orderType', 'A quote is for a market order.');
    return;
  }
  setSubmitStatus('Quoting…');
  try {
    const quote = await api.quote(result.body);
    showQuote({ quote, body: result.body, tokens: result.tokens });
    setSubmitStatus('');
  } catch (err) {
    setSubmitStatus('');
    showSubmitError(err);
  }
}

function showQuote(shown) {
  shownQuote = shown;
  quoteEls.panel.hidden = !shown;
  if (!shown) return;
  const q = shown.quote;
  const out = q.tokenOut?.symbol ?? '';
  const venues = (Array.isArray(q.quotes) ? q.quotes : []).map((v) =>
    h('li', {}, v.error ? `${v.venue}: no quote (${v.error})` : `${v.venue}: ${v.amountOut} ${out}, impact ${v.priceImpactBps} bps`),
  );
  replaceChildren(
    quoteEls.body,
    h('ul', { class: 'quote-venues' }, venues),
    h('dl', { class: 'quote-terms' },
      h('dt', {}, 'Route'), h('dd', {}, String(q.route?.dex ?? '')),
      ...(q.exactOut
        ? [
          h('dt', {}, 'Amount out'), h('dd', {}, `exactly ${q.amountOut} ${out}`),
          h('dt', {}, 'Amount in'), h('dd', {}, `${q.amountIn} ${q.tokenIn?.symbol ?? ''}`),
          h('dt', {}, 'Maximum in'), h('dd', {}, `${q.maxAmountIn} ${q.tokenIn?.symbol ?? ''}`),
        ]
        : [
          h('dt', {}, 'Amount out'), h('dd', {}, `${q.amountOut} ${out}`),
          h('dt', {}, 'Minimum out'), h('dd', {}, `${q.minAmountOut} ${out}`),
        ]),
      h('dt', {}, 'Price impact'), h('dd', {}, `${q.priceImpactBps} bps`),
      h('dt', {}, 'Fees'), h('dd', {}, `${q.fee} ${q.tokenIn?.symbol ?? ''}`),
      h('dt', {}, 'Valid until'), h('dd', {}, h('time', { datetime: q.expiresAt }, String(q.expiresAt)))),
  );
}

async function executeQuote() {
  if (!shownQuote) return;
  const { quote, body, tokens } = shownQuote;
  quoteEls.execute.disabled = true;
  try {
    const answer = await api.execute({ quoteId: quote.quoteId }, newIdempotencyKey());
    follow(answer.orderId, body, tokens, { followedBySocket: false });
    setSubmitStatus(`Order ${answer.orderId.slice(0, 8)} accepted.`);
    showQuote(null);
  } catch (err) {
    showSubmitError(err);
  } finally {
    quoteEls.execute.disabled = false;
  }
}

async function cancelOrder(orderId) {
  try {
    await api.cancel(orderId);
  } catch (err) {
    if (!handleAuthError(err)) byId('history-status').textContent = `Could not cancel: ${err.message}`;
  }
  history.reload();
}

const cardContext = {
  explorer: () => state.explorer,
  resubscribe(card) {
    // a gap in seq: start the stream again right after the last contiguous event
    if (socket.send({ action: 'unsubscribe', orderId: card.orderId })) subscribe(card);
  },
  onTerminal(card, { replayed }) {
    if (card.subscribed) socket.send({ action: 'unsubscribe', orderId: card.orderId });
    card.subscribed = false;
    if (!replayed) history.scheduleRefresh();
  },
  onDismiss: (card) => removeCard(card, { moveFocus: true }),
};

// ---- markets ----------------------------------------------------------------

async function loadMarkets() {
  try {
    const markets = await api.markets();
    state.book = new TokenBook(Array.isArray(markets?.tokens) ? markets.tokens : []);
    state.explorer = typeof markets?.explorer === 'string' ? markets.explorer : null;
    els.cluster.textContent = String(markets?.cluster ?? '?');
    form.setTokens(state.book);
  } catch (err) {
    els.cluster.textContent = '?';
    if (!handleAuthError(err)) form.showGeneral(`Could not load the token list: ${err.message}`);
  }
}

// ---- submitting ---------------------------------------------------------------

async function submitOrder({ body, tokens }) {
  if (Date.now() < state.cooldownUntil || state.pendingExecute) return;
  const key = newIdempotencyKey();
  form.setBusy(true);
  setSubmitStatus('Submitting…');
  try {
    let orderId;
    if (socket.isOpen) {
      try {
        orderId = await executeOverSocket(body, key, tokens);
      } catch (err) {
        if (!(err instanceof SocketLost)) throw err;
        orderId = await executeOverHttp(body, key, tokens); // same key: at most one order
      }
    } else {
      orderId = await executeOverHttp(body, key, tokens);
    }
    setSubmitStatus(`Order ${orderId.slice(0, 8)} accepted.`);
  } catch (err) {
    setSubmitStatus('');
    showSubmitError(err);
  } finally {
    if (Date.now() >= state.cooldownUntil) form.setBusy(false);
  }
}

/** `execute` on the socket; resolves with the order id on `accepted`. */
function executeOverSocket(body, key, tokens) {
  return new Promise((resolve, reject) => {
    const pending = {
      // Called from the socket's message handler: the card must exist before
      // the next message (this order's first status) is handled.
      accept(orderId) {
        done();
        follow(orderId, body, tokens, { followedBySocket: true });
        resolve(orderId);
      },
      fail(err) {
        done();
        reject(err);
      },
      timer: setTimeout(() => pending.fail(new SocketLost('no answer')), EXECUTE_TIMEOUT_MS),
    };
    const done = () => {
      clearTimeout(pending.timer);
      if (state.pendingExecute === pending) state.pendingExecute = null;
    };
    state.pendingExecute = pending;
    if (!socket.send({ action: 'execute', ...body, idempotencyKey: key })) pending.fail(new SocketLost('closed'));
  });
}

async function executeOverHttp(body, key, tokens) {
  const answer = await api.execute(body, key);
  if (!answer || typeof answer.orderId !== 'string') throw new ApiError({ message: 'The engine gave no order id.' });
  follow(answer.orderId, body, tokens, { followedBySocket: false });
  return answer.orderId;
}

function showSubmitError(err) {
  if (err.field && form.showServerError(err.field, err.message)) return;
  if (handleAuthError(err)) {
    form.showGeneral(err.message);
    return;
  }
  if (err.status === 503 || err.status === 429) {
    const seconds = Math.max(1, Math.min(err.retryAfter ?? 2, 120));
    form.showGeneral(`${err.message} Please retry in ${seconds} s.`);
    startCooldown(seconds);
    return;
  }
  form.showGeneral(err.message || 'The order could not be submitted.');
}

/** After a 503: keep the button disabled until Retry-After has passed. */
function startCooldown(seconds) {
  state.cooldownUntil = Date.now() + seconds * 1000;
  form.setBusy(true);
  const tick = () => {
    const left = Math.ceil((state.cooldownUntil - Date.now()) / 1000);
    if (left <= 0) {
      form.setBusy(false);
      setSubmitStatus('');
      return;
    }
    setSubmitStatus(`You can retry in ${left} s.`);
    setTimeout(tick, 250);
  };
  tick();
}

function setSubmitStatus(text) {
  els.submitStatus.textContent = text;
}

// ---- following orders -----------------------------------------------------------

/** Show a card for a just-accepted order and make sure the socket follows it. */
function follow(orderId, body, tokens, { followedBySocket }) {
  let card = state.cards.get(orderId);
  if (!card) {
    card = addCard(orderId, {
      tokenIn: tokens.tokenIn ?? state.book.describe(body.tokenIn),
      tokenOut: tokens.tokenOut ?? state.book.describe(body.tokenOut),
      amount: body.amount,
      amountOut: body.amountOut ?? null,
      slippageBps: body.slippageBps ?? null,
    });
  }
  if (followedBySocket) {
    // `execute` follows the order on this socket. Should the first status not
    // come, subscribe explicitly (duplicates would be dropped by seq anyway).
    card.subscribed = true;
    setTimeout(() => {
      if (state.cards.get(orderId) === card && card.lastSeq === 0) subscribe(card);
    }, SUBSCRIBE_CHECK_MS);
  } else {
    subscribe(card);
  }
  // An unlisted mint: learn its symbol and decimals from the engine.
  if (card.tokenIn?.decimals == null || card.tokenOut?.decimals == null) {
    api.order(orderId).then((order) => card.hydrate(order)).catch(() => {});
  }
  history.scheduleRefresh();
}

/** Send `subscribe` from the card's last contiguous seq; if closed, `resubscribeAll` will on open. */
function subscribe(card) {
  if (card.isTerminal) return;
  card.subscribed = socket.send({ action: 'subscribe', orderId: card.orderId, afterSeq: card.lastSeq });
}

/** Follow `card` again from its last contiguous seq, after a growing, jittered pause. */
function scheduleResubscribe(card) {
  card.subscribed = false;
  card.resubscribeAttempt = (card.resubscribeAttempt ?? 0) + 1;
  const delay = backoffDelay(card.resubscribeAttempt - 1);
  clearTimeout(card.resubscribeTimer);
  card.resubscribeTimer = setTimeout(() => {
    if (state.cards.get(card.orderId) === card && !card.subscribed) subscribe(card);
  }, delay);
}

/** After every (re)connect: each unfinished order continues from its last seq. */
function resubscribeAll() {
  for (const card of state.cards.values()) {
    card.subscribed = false;
    card.resetResync();
    subscribe(card);
  }
}

function handleSocketMessage(msg) {
  switch (msg.type) {
    case 'status': {
      state.cards.get(msg.orderId)?.receive(msg);
      break;
    }
    case 'accepted':
      if (state.pendingExecute && typeof msg.orderId === 'string') state.pendingExecute.accept(msg.orderId);
      break;
    case 'subscribed': {
      const card = state.cards.get(msg.orderId);
      if (card) {
        card.el.dataset.subscribed = 'true';
        card.resubscribeAttempt = 0;
      }
      break;
    }
    case 'error':
      handleSocketError(msg);
      break;
    default:
      break; // unknown message types are ignored (forward compatibility)
  }
}

function handleSocketError(msg) {
  const err = new ApiError({
    status: 400,
    code: String(msg.code ?? 'error'),
    message: String(msg.message ?? 'The engine refused the request.'),
    field: typeof msg.field === 'string' ? msg.field : null,
  });
  const card = msg.orderId ? state.cards.get(msg.orderId) : null;
  if (card) {
    if (card.isTerminal) return;
    if (RESUBSCRIBE_CODES.has(err.code)) {
      scheduleResubscribe(card);
      return;
    }
    card.showNote(err.message);
    return;
  }
  if (/unauth|api.?key|permission|forbidden/i.test(err.code)) {
    err.status = 401;
  } else if (/unavailable|overload|busy|rate/i.test(err.code)) {
    err.status = 503;
    err.retryAfter = Number(msg.retryAfter) || null;
  }
  if (state.pendingExecute) {
    state.pendingExecute.fail(err);
    return;
  }
  if (!handleAuthError(err)) form.showGeneral(err.message);
}

function handleSocketClose(event) {
  if (state.pendingExecute) state.pendingExecute.fail(new SocketLost('closed'));
  for (const card of state.cards.values()) card.subscribed = false;
  if (AUTH_CLOSE_CODES.has(event.code)) {
    showApiKeyPanel('The live connection was refused. An API key may be required.', { focus: false });
  }
}

// ---- cards ----------------------------------------------------------------------

function addCard(orderId, init) {
  const card = new OrderCard(orderId, init, cardContext);
  state.cards.set(orderId, card);
  els.orders.prepend(card.el);
  trimCards();
  persistFollowed();
  els.ordersEmpty.hidden = true;
  return card;
}

function removeCard(card, { moveFocus = false } = {}) {
  if (!card.isTerminal && card.subscribed) socket.send({ action: 'unsubscribe', orderId: card.orderId });
  const next = card.el.nextElementSibling ?? card.el.previousElementSibling;
  card.el.remove();
  state.cards.delete(card.orderId);
  persistFollowed();
  els.ordersEmpty.hidden = state.cards.size > 0;
  if (moveFocus) (next ?? els.ordersHeading).focus();
}

/** Keep the page light: beyond MAX_CARDS, drop the oldest finished cards. */
function trimCards() {
  for (const card of state.cards.values()) {
    if (state.cards.size <= MAX_CARDS) break;
    if (card.isTerminal) removeCard(card);
  }
}

/** Open an order from the history table (or focus its card if it is already shown). */
async function viewOrder(orderId) {
  let card = state.cards.get(orderId);
  if (!card) {
    card = addCard(orderId, {});
    await loadIntoCard(card);
  }
  card.el.scrollIntoView({ block: 'nearest' });
  card.el.focus({ preventScroll: true });
}

/**
 * GET the order (tokens, amounts, past events), then follow it live if unfinished.
 * `dropIfMissing`: a restored card whose order the engine no longer knows just goes away.
 */
async function loadIntoCard(card, { dropIfMissing = false } = {}) {
  try {
    card.hydrate(await api.order(card.orderId));
    subscribe(card);
  } catch (err) {
    if (err.status === 404 && dropIfMissing) removeCard(card);
    else if (err.status === 404) card.showNote('This order is not known to the engine.');
    else if (!handleAuthError(err)) card.showNote(`Could not load this order: ${err.message}`);
  }
}

function persistFollowed() {
  try {
    sessionStorage.setItem(FOLLOWED_KEY, JSON.stringify([...state.cards.keys()]));
  } catch {
    /* storage unavailable: cards just won't survive a reload */
  }
}

/** Cards of the previous load of this tab come back, then catch up from their events. */
function restoreFollowed() {
  let ids = [];
  try {
    ids = JSON.parse(sessionStorage.getItem(FOLLOWED_KEY) ?? '[]');
  } catch {
    ids = [];
  }
  if (!Array.isArray(ids)) return;
  for (const id of ids.filter((x) => typeof x === 'string').slice(-MAX_CARDS)) {
    if (!state.cards.has(id)) loadIntoCard(addCard(id, {}), { dropIfMissing: true });
  }
}

// ---- connection indicator ---------------------------------------------------------

function showConnection(connState, retryAt) {
  els.connection.dataset.state = connState;
  const label = { connected: 'Connected', connecting: 'Connecting…', reconnecting: 'Reconnecting…' }[connState];
  if (els.connectionText.textContent !== label) els.connectionText.textContent = label ?? connState;

  // The countdown is visual only (aria-hidden): announcing every second would be noise.
  clearInterval(state.retryTicker);
  els.connectionRetry.textContent = '';
  if (connState === 'reconnecting' && retryAt) {
    const tick = () => {
      const left = Math.ceil((retryAt - Date.now()) / 1000);
      els.connectionRetry.textContent = left > 0 ? `in ${left} s` : '';
    };
    tick();
    state.retryTicker = setInterval(tick, 500);
  }
}

// ---- API key ---------------------------------------------------------------------

function setupApiKeyPanel() {
  if (getApiKey()) {
    els.apiKeyInput.value = getApiKey();
    els.apiKeyMessage.textContent = 'A key is set for this browser tab.';
  }
  els.apiKeyToggle.addEventListener('click', () => {
    if (els.apiKeyPanel.hidden) showApiKeyPanel(null, { focus: true });
    else hideApiKeyPanel();
  });
  els.apiKeyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = els.apiKeyInput.value.trim();
    setApiKey(key);
    els.apiKeyMessage.textContent = key ? 'Key saved for this browser tab.' : 'No key set.';
    applyNewKey();
  });
  els.apiKeyClear.addEventListener('click', () => {
    setApiKey('');
    els.apiKeyInput.value = '';
    els.apiKeyMessage.textContent = 'Key forgotten.';
    applyNewKey();
  });
}

function applyNewKey() {
  form.showGeneral('');
  socket.restart();
  loadMarkets();
  history.reload();
}

function showApiKeyPanel(message, { focus = true } = {}) {
  if (message) els.apiKeyMessage.textContent = message;
  const wasHidden = els.apiKeyPanel.hidden;
  els.apiKeyPanel.hidden = false;
  els.apiKeyToggle.setAttribute('aria-expanded', 'true');
  if (focus && wasHidden) els.apiKeyInput.focus();
}

function hideApiKeyPanel() {
  els.apiKeyPanel.hidden = true;
  els.apiKeyToggle.setAttribute('aria-expanded', 'false');
  els.apiKeyToggle.focus();
}

/** 401/403 anywhere: reveal the API key field. Returns true if it was an auth error. */
function handleAuthError(err) {
  if (err?.status !== 401 && err?.status !== 403) return false;
  showApiKeyPanel(
    err.status === 401 ? 'This engine requires an API key. Enter it here.' : 'This API key was refused. Check it and save again.',
  );
  return true;
}

// ---- start (last, once every declaration above is initialised) -------------------

fillStatusFilter(byId('history-filter'), STATUSES);
setupApiKeyPanel();
loadMarkets();
socket.connect();
history.reload();
restoreFollowed();
window.addEventListener('online', () => socket.reconnectNow());
