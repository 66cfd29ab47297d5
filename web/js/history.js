// History table: GET /api/orders, newest first, status filter, "Load more" by cursor.

import { api } from './api.js';
import { h, replaceChildren } from './dom.js';
import { formatDateTime, parseInstant, venueLabel } from './format.js';
import { tokenName } from './order-card.js';

const PAGE_SIZE = 20;
const REFRESH_DEBOUNCE_MS = 400;

export class HistoryTable {
  /**
   * @param {object} els      { table, body, filter, more, refresh, status }
   * @param {object} handlers { onView(orderId), onError(err) }
   */
  constructor(els, handlers) {
    this.els = els;
    this.handlers = handlers;
    this.cursor = null;
    this.generation = 0; // answers to a superseded request are dropped
    this.refreshTimer = null;

    els.filter.addEventListener('change', () => this.reload());
    els.refresh.addEventListener('click', () => this.reload());
    els.more.addEventListener('click', () => this.loadMore());
  }

  /** First page again (filter change, refresh, an order ended). */
  reload() {
    clearTimeout(this.refreshTimer);
    this.cursor = null;
    return this.load({ reset: true });
  }

  loadMore() {
    if (!this.cursor) return Promise.resolve();
    return this.load({ reset: false });
  }

  /** Coalesce bursts of "an order ended" into one reload. */
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.reload(), REFRESH_DEBOUNCE_MS);
  }

  async load({ reset }) {
    const generation = ++this.generation;
    const { table, body, more, status } = this.els;
    const moreHadFocus = document.activeElement === more; // checked before `disabled` drops it
    const firstNewIndex = reset ? 0 : body.querySelectorAll('tr[data-order-id]').length;
    table.setAttribute('aria-busy', 'true');
    more.disabled = true;
    status.textContent = reset ? 'Loading…' : 'Loading more…';

    let page;
    try {
      page = await api.orders({ limit: PAGE_SIZE, cursor: reset ? null : this.cursor, status: this.els.filter.value });
    } catch (err) {
      if (generation !== this.generation) return;
      table.setAttribute('aria-busy', 'false');
      status.textContent = `Could not load history: ${err.message}`;
      more.disabled = false;
      this.handlers.onError?.(err);
      return;
    }
    if (generation !== this.generation) return;

    const orders = Array.isArray(page?.orders) ? page.orders : [];
    if (reset) body.replaceChildren();
    for (const order of orders) body.appendChild(this.row(order));
    if (body.children.length === 0) {
      body.appendChild(h('tr', { class: 'empty', role: 'row' }, h('td', { role: 'cell', colspan: '7' }, 'No orders yet.')));
    }

    this.cursor = page?.nextCursor ?? null;
    more.hidden = !this.cursor;
    more.disabled = false;
    table.setAttribute('aria-busy', 'false');
    const rows = body.querySelectorAll('tr[data-order-id]');
    status.textContent = `${rows.length} order${rows.length === 1 ? '' : 's'} shown${this.cursor ? ', more available' : ''}.`;
    // "Load more" pressed from the keyboard: keep focus on it, or, once it is
    // gone (last page), on the first of the rows it brought.
    if (moreHadFocus) (more.hidden ? rows[firstNewIndex]?.querySelector('button') : more)?.focus();
  }

  row(order) {
    const created = parseInstant(order.createdAt);
    const outSymbol = tokenName(order.tokenOut);
    const statusText = String(order.status ?? '');
    // explicit roles: see the comment on the table in index.html
    const cell = (props, ...children) => h('td', { role: 'cell', ...props }, ...children);
    return h(
      'tr',
      { role: 'row', dataset: { orderId: order.orderId, status: statusText } },
      cell({ class: 'nowrap h-created' }, h('time', { datetime: order.createdAt ?? '' }, formatDateTime(created))),
      cell({ class: 'nowrap h-pair' }, `${tokenName(order.tokenIn)} → ${outSymbol}`),
      cell({ class: 'num h-in', dataset: { label: 'In' } },
        order.amountIn != null ? `${order.amountIn} ${tokenName(order.tokenIn)}` : '—'),
      cell({ class: 'num h-out', dataset: { label: 'Out' } },
        order.amountOut != null ? `${order.amountOut} ${outSymbol}` : '—'),
      cell({ class: 'h-venue' }, order.dex ? venueLabel(order.dex) : '—'),
      cell({ class: 'h-status' },
        h('span', { class: 'badge', dataset: { status: statusText } }, statusText),
        statusText === 'failed' && order.failureReason
          ? h('span', { class: 'history-reason' }, order.failureReason)
          : null),
      cell({ class: 'h-action' },
        h('button', {
          type: 'button',
          class: 'button button-small',
          'aria-label': `View order ${order.orderId}`,
          onclick: () => this.handlers.onView(order.orderId),
        }, 'View'),
        statusText === 'open'
          ? h('button', {
            type: 'button',
            class: 'button button-small button-quiet',
            'aria-label': `Cancel order ${order.orderId}`,
            onclick: () => this.handlers.onCancel?.(order.orderId),
          }, 'Cancel')
          : null),
    );
  }
}

/** Fill the status filter's options (the select itself lives in index.html). */
export function fillStatusFilter(select, statuses) {
  replaceChildren(
    select,
    h('option', { value: '' }, 'All statuses'),
    statuses.map((s) => h('option', { value: s }, s)),
  );
}
