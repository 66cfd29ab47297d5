// One card per followed order: header, live timeline, quotes/route, result.
//
// Events are applied strictly in seq order. `receive` is the only way in:
//   - seq <= lastSeq, or already buffered  → duplicate, ignored
//   - seq == lastSeq + 1                   → applied, then any buffered successors
//   - seq >  lastSeq + 1                   → buffered; we ask for a resubscribe
//                                            with afterSeq = lastSeq to fill the gap
// `lastSeq` is therefore always the last *contiguous* seq, which is exactly
// what a (re)subscribe must send as afterSeq.

import { h, replaceChildren } from './dom.js';
import {
  TERMINAL,
  explorerUrl,
  formatBps,
  formatClock,
  formatMs,
  formatRaw,
  parseInstant,
  shareParts,
  shortenMiddle,
  venueLabel,
} from './format.js';

// A gap that is still open after this long may ask for another resubscribe.
const RESYNC_RETRY_MS = 3000;

/** A signed decimal string as shown: "+1.5" for a gain, "-0.2" for a loss. */
function signed(value) {
  const text = String(value ?? '—');
  return /^[0-9]/.test(text) && !/^0(\.0*)?$/.test(text) ? `+${text}` : text;
}

/** Display name of a token object { symbol, mint, decimals }. */
export function tokenName(token) {
  if (!token) return '?';
  return token.symbol || shortenMiddle(token.mint) || '?';
}

export class OrderCard {
  /**
   * @param {string} orderId
   * @param {object} init  { tokenIn, tokenOut, amount, slippageBps }  tokens as { symbol, mint, decimals }
   * @param {object} ctx   { explorer(): string|null, resubscribe(card), onTerminal(card, { replayed }), onDismiss(card) }
   */
  constructor(orderId, init, ctx) {
    this.orderId = orderId;
    this.ctx = ctx;
    this.tokenIn = init.tokenIn ?? null;
    this.tokenOut = init.tokenOut ?? null;
    this.amount = init.amount ?? '';
    this.amountOut = init.amountOut ?? null; // exact-out: the amount received exactly
    this.slippageBps = init.slippageBps ?? null;

    this.lastSeq = 0;
    this.buffer = new Map(); // seq → event, events that arrived ahead of a gap
    this.resyncAskedAt = 0;
    this.replaying = false;
    this.status = null;
    this.firstAt = null;
    this.prevAt = null;
    this.result = {}; // signature, txHash, dex, amountOut, amountOutRaw, executedPrice, costs, reason

    this.build();
  }

  get isTerminal() {
    return TERMINAL.has(this.status);
  }

  // ---- sequencing ---------------------------------------------------------

  /** Feed one status event ({ seq, status, at, data }) from the socket or from GET. */
  receive(event) {
    const seq = Number(event?.seq);
    if (!Number.isInteger(seq) || seq < 1) return;
    if (seq <= this.lastSeq || this.buffer.has(seq)) return; // duplicate
    this.buffer.set(seq, event);
    while (this.buffer.has(this.lastSeq + 1)) {
      const next = this.buffer.get(this.lastSeq + 1);
      this.buffer.delete(this.lastSeq + 1);
      this.lastSeq += 1;
      this.apply(next);
    }
    if (this.buffer.size > 0) this.askResync();
    else this.resyncAskedAt = 0;
  }

  /** A gap: ask the app to resubscribe from lastSeq (at most once per RESYNC_RETRY_MS). */
  askResync() {
    const now = Date.now();
    if (now - this.resyncAskedAt < RESYNC_RETRY_MS) return;
    this.resyncAskedAt = now;
    this.ctx.resubscribe(this);
  }

  /** The socket reconnected: a gap may be asked about again at once. */
  resetResync() {
    this.resyncAskedAt = 0;
  }

  /** Fill the card from GET /api/orders/{id} (tokens, amount, past events). */
  hydrate(order) {
    if (order.tokenIn && typeof order.tokenIn === 'object') this.tokenIn = order.tokenIn;
    if (order.tokenOut && typeof order.tokenOut === 'object') this.tokenOut = order.tokenOut;
    if (order.amountIn) this.amount = order.amountIn;
    if (order.exactOut && order.targetAmountOut) this.amountOut = order.targetAmountOut;
    if (order.slippageBps != null) this.slippageBps = order.slippageBps;
    this.renderHeader();
    const events = Array.isArray(order.events) ? order.events : [];
    this.replaying = true; // past events: no "order just ended" side effects
    try {
      for (const event of events) this.receive(event);
    } finally {
      this.replaying = false;
    }
  }

  // ---- applying one event --------------------------------------------------

  apply(event) {
    const data = event.data && typeof event.data === 'object' ? event.data : {};
    const status = String(event.status ?? 'unknown');
    this.status = status;
    this.el.dataset.status = status;
    this.statusBadge.textContent = status;
    this.statusBadge.dataset.status = status;

    this.appendStep(event, status, data);

    switch (status) {
      case 'routing':
        this.renderRouting(data);
        if (this.result.signature) {
          // a re-route after a transaction expired: its signature is history now
          this.result.signature = null;
          this.renderResult();
        }
        break;
      case 'submitted':
        if (data.signature) this.result.signature = String(data.signature);
        this.renderResult();
        break;
      case 'confirmed':
        Object.assign(this.result, {
          txHash: data.txHash ?? this.result.signature ?? null,
          dex: data.dex ?? null,
          amountOut: data.amountOut ?? null,
          amountOutRaw: data.amountOutRaw ?? null,
          executedPrice: data.executedPrice ?? null,
          costs: data.costs && typeof data.costs === 'object' ? data.costs : null,
        });
        this.renderResult();
        break;
      case 'failed':
        this.result.reason = data.reason ?? 'unknown reason';
        this.renderResult();
        break;
      default:
        break;
    }

    if (this.isTerminal) {
      this.dismissButton.hidden = false;
      this.ctx.onTerminal(this, { replayed: this.replaying });
    }
  }

  /** One timeline row: status name, wall-clock time, time since the previous step. */
  appendStep(event, status, data) {
    const at = parseInstant(event.at);
    const delta = at != null && this.prevAt != null ? at - this.prevAt : null;
    if (at != null) {
      if (this.firstAt == null) this.firstAt = at;
      this.prevAt = at;
    }

    let detail = null;
    if (status === 'routing' && Number(data.attempt) > 1) {
      detail = `attempt ${data.attempt}` + (data.retryOf ? ` · retry of: ${data.retryOf}` : '');
    } else if (status === 'failed' && data.reason) {
      detail = String(data.reason);
    }

    const row = h(
      'li',
      { class: 'step', dataset: { status, seq: event.seq } },
      h('span', { class: 'step-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'step-name' }, status),
      detail && h('span', { class: 'step-detail' }, detail),
      h('span', { class: 'step-times' },
        h('time', { datetime: event.at ?? '' }, formatClock(at)),
        h('span', { class: 'step-delta', dataset: { field: 'delta' } }, delta == null ? 'start' : `+${formatMs(delta)}`),
      ),
    );
    this.timeline.appendChild(row);

    if (this.isTerminal && this.firstAt != null && at != null) {
      this.elapsed.textContent = `Total ${formatMs(at - this.firstAt)}`;
      this.elapsed.hidden = false;
    }
  }

  // ---- rendering ----------------------------------------------------------

  build() {
    this.statusBadge = h('span', { class: 'badge', dataset: { field: 'status' } }, 'waiting');
    this.pairEl = h('h3', { class: 'card-title', dataset: { field: 'pair' } });
    this.elapsed = h('span', { class: 'elapsed', dataset: { field: 'elapsed' }, hidden: true });
    this.note = h('p', { class: 'card-note', role: 'status', hidden: true });
    this.timeline = h('ol', {
      class: 'timeline',
      'aria-live': 'polite',
      'aria-relevant': 'additions',
      'aria-label': `Status timeline of order ${this.orderId}`,
    });
    this.routing = h('section', { class: 'routing', hidden: true, 'aria-label': 'Quotes and route' });
    this.resultEl = h('section', { class: 'result', hidden: true, 'aria-label': 'Result' });
    this.dismissButton = h(
      'button',
      { type: 'button', class: 'button button-quiet', hidden: true, onclick: () => this.ctx.onDismiss(this) },
      'Dismiss',
    );

    this.el = h(
      'article',
      { class: 'card order-card', tabindex: '-1', dataset: { orderId: this.orderId }, 'aria-label': `Order ${this.orderId}` },
      h('header', { class: 'card-head' },
        this.pairEl,
        this.statusBadge,
      ),
      h('p', { class: 'card-meta' },
        h('span', {}, 'Order '),
        h('code', { class: 'mono', dataset: { field: 'orderId' } }, this.orderId),
        this.elapsed,
      ),
      this.note,
      this.timeline,
      this.routing,
      this.resultEl,
      h('div', { class: 'card-actions' }, this.dismissButton),
    );
    this.renderHeader();
  }

  renderHeader() {
    const slip = this.slippageBps != null ? ` · max slippage ${formatBps(this.slippageBps)}` : '';
    if (this.amountOut) {
      // exact-out: what is received is fixed; what is spent shows once confirmed
      replaceChildren(
        this.pairEl,
        `${tokenName(this.tokenIn)} → exactly `,
        h('span', { dataset: { field: 'targetAmountOut' } }, this.amountOut),
        ` ${tokenName(this.tokenOut)}`,
        h('span', { class: 'card-sub' }, slip),
      );
      return;
    }
    replaceChildren(
      this.pairEl,
      h('span', { dataset: { field: 'amountIn' } }, this.amount || '?'),
      ` ${tokenName(this.tokenIn)} → ${tokenName(this.tokenOut)}`,
      h('span', { class: 'card-sub' }, slip),
    );
  }

  /** Show a short message on the card (e.g. an error about this order from the socket). */
  showNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  /** Amount in token units from a `…` / `…Raw` pair; decimal string preferred. */
  amountText(decimal, raw, token) {
    if (decimal != null && decimal !== '') return String(decimal);
    if (raw != null && token?.decimals != null) return formatRaw(raw, token.decimals) ?? String(raw);
    return raw != null ? `${raw} (base units)` : '—';
  }

  /** Quotes side by side, the chosen one(s) highlighted with their share; then the route summary. */
  renderRouting(data) {
    const quotes = Array.isArray(data.quotes) ? data.quotes : [];
    const route = data.route && typeof data.route === 'object' ? data.route : null;
    const legs = Array.isArray(route?.legs) ? route.legs : [];
    const shares = shareParts(legs.map((leg) => leg.amountInRaw));
    const outSymbol = tokenName(this.tokenOut);
    const inSymbol = tokenName(this.tokenIn);

    const legIndexOf = (quote) =>
      legs.findIndex((leg) => leg.venue === quote.venue && (leg.pool == null || quote.pool == null || leg.pool === quote.pool));

    const quoteEls = quotes.map((quote) => {
      const legIndex = legIndexOf(quote);
      const chosen = legIndex >= 0;
      const share = chosen && legs.length > 1 ? shares[legIndex] : null;
      const body = quote.error
        ? h('p', { class: 'quote-error' }, `No quote: ${quote.error}`)
        : h('dl', { class: 'kv' },
            h('dt', {}, 'Out'),
            h('dd', {}, `${this.amountText(quote.amountOut, quote.amountOutRaw, this.tokenOut)} ${outSymbol}`),
            h('dt', {}, 'Price impact'),
            h('dd', {}, formatBps(quote.priceImpactBps)),
            quote.feeRaw != null && [
              h('dt', {}, 'Fee'),
              h('dd', {}, `${this.amountText(null, quote.feeRaw, this.tokenIn)} ${inSymbol}`),
            ],
          );
      return h(
        'div',
        { class: 'quote', dataset: { venue: quote.venue, pool: quote.pool, chosen: chosen ? 'true' : 'false' } },
        h('div', { class: 'quote-head' },
          h('span', { class: 'quote-venue' }, venueLabel(quote.venue)),
          chosen && h('span', { class: 'chip chip-chosen' }, share ? `Chosen · ${share}` : 'Chosen'),
        ),
        body,
        quote.pool && h('p', { class: 'quote-pool mono', title: quote.pool }, `Pool ${shortenMiddle(quote.pool, 6, 6)}`),
      );
    });

    let summary = null;
    if (route) {
      const dex = route.dex ?? (legs.length > 1 ? 'split' : legs[0]?.venue);
      const split =
        legs.length > 1 ? legs.map((leg, i) => `${venueLabel(leg.venue)} ${shares[i] ?? '?'}`).join(' + ') : null;
      summary = h('dl', { class: 'kv route-summary' },
        h('dt', {}, 'Route'),
        h('dd', { dataset: { field: 'route' } }, split ? `Split: ${split}` : venueLabel(dex)),
        h('dt', {}, 'Expected out'),
        h('dd', {}, `${this.amountText(route.amountOut, route.amountOutRaw, this.tokenOut)} ${outSymbol}`),
        h('dt', {}, 'Minimum out'),
        h('dd', { dataset: { field: 'minAmountOut' } },
          `${this.amountText(route.minAmountOut, route.minAmountOutRaw, this.tokenOut)} ${outSymbol}`),
      );
    }

    const attempt = Number(data.attempt) || 1;
    replaceChildren(
      this.routing,
      h('h4', { class: 'section-title' }, attempt > 1 ? `Quotes · attempt ${attempt}` : 'Quotes'),
      data.retryOf && h('p', { class: 'retry-note' }, `Retrying after: ${data.retryOf}`),
      quotes.length
        ? h('div', { class: 'quotes' }, quoteEls)
        : h('p', { class: 'muted' }, 'No venue quoted.'),
      summary,
    );
    this.routing.dataset.attempt = String(attempt);
    this.routing.hidden = false;
  }

  /** Signature while submitted; venue, amount out, price and signature once confirmed; reason if failed. */
  renderResult() {
    const r = this.result;
    const rows = [];
    if (this.status === 'failed') {
      rows.push(h('p', { class: 'failure' },
        h('strong', {}, 'Failed: '),
        h('span', { dataset: { field: 'failureReason' } }, r.reason)));
    } else if (this.status === 'confirmed') {
      rows.push(h('dl', { class: 'kv result-grid' },
        h('dt', {}, 'Venue'),
        h('dd', {}, h('span', { dataset: { field: 'dex' }, title: venueLabel(r.dex) }, r.dex ?? '—')),
        h('dt', {}, 'Amount out'),
        h('dd', {},
          h('span', { dataset: { field: 'amountOut' } }, this.amountText(r.amountOut, r.amountOutRaw, this.tokenOut)),
          ` ${tokenName(this.tokenOut)}`),
        h('dt', {}, 'Executed price'),
        h('dd', {},
          h('span', { dataset: { field: 'executedPrice' } }, r.executedPrice ?? '—'),
          ` ${tokenName(this.tokenOut)} per ${tokenName(this.tokenIn)}`),
        h('dt', {}, 'Transaction'),
        h('dd', {}, this.signatureEl(r.txHash, 'txHash')),
        ...this.costRows(r.costs),
      ));
    }
    if (this.status !== 'confirmed' && r.signature) {
      rows.push(h('dl', { class: 'kv result-grid' },
        h('dt', {}, 'Transaction'),
        h('dd', {}, this.signatureEl(r.signature, 'signature'),
          this.status === 'submitted' && h('span', { class: 'muted' }, ' awaiting confirmation')),
      ));
    }
    replaceChildren(this.resultEl, rows);
    this.resultEl.hidden = rows.length === 0;
    this.resultEl.dataset.status = this.status ?? '';
  }

  /** What the swap cost (the confirmed event's costs): fees and rent in SOL, the wallet's balance
   *  change per mint (signed). Nothing when the event has no costs. */
  costRows(costs) {
    if (!costs) return [];
    const sol = (value, field) => h('dd', {}, h('span', { dataset: { field } }, value ?? '—'), ' SOL');
    const changes = Array.isArray(costs.balanceChanges) ? costs.balanceChanges : [];
    return [
      h('dt', {}, 'Network fee'), sol(costs.networkFee, 'networkFee'),
      h('dt', {}, 'Priority fee'), sol(costs.priorityFee, 'priorityFee'),
      h('dt', {}, 'Rent'), sol(costs.rent, 'rent'),
      h('dt', {}, 'Wallet change'),
      h('dd', { dataset: { field: 'balanceChanges' } },
        ...changes.map((c) => h('div', { dataset: { mint: String(c.mint ?? '') } },
          `${signed(c.change ?? c.changeRaw)} ${c.symbol ?? c.mint}`))),
    ];
  }

  /** A signature: an explorer link when the cluster has one, plain monospace text otherwise (sim). */
  signatureEl(signature, field) {
    if (!signature) return h('span', { dataset: { field } }, '—');
    const href = explorerUrl(this.ctx.explorer(), signature);
    if (href) {
      return h('a', {
        class: 'mono sig',
        href,
        target: '_blank',
        rel: 'noopener noreferrer',
        dataset: { field },
        title: 'Open in the explorer (new tab)',
      }, signature);
    }
    return h('code', { class: 'mono sig', dataset: { field } }, signature);
  }
}
