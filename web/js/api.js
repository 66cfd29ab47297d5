// HTTP client for the gateway (same origin) and the API-key store.

import { parseRetryAfter } from './format.js';

const KEY_STORAGE = 'orderengine.apiKey';

/** The API key for this tab (sessionStorage: gone when the tab closes). */
export function getApiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return ''; // storage disabled: behave as "no key"
  }
}

export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled: the key just won't persist */
  }
}

/** An error answer (or no answer) from the engine, in the contract's shape. */
export class ApiError extends Error {
  constructor({ status = 0, code = 'error', message = 'Something went wrong.', field = null, retryAfter = null }) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // HTTP status, 0 when the engine could not be reached
    this.code = code;
    this.field = field; // tokenIn | tokenOut | amount | slippageBps | null
    this.retryAfter = retryAfter; // seconds, from Retry-After
  }
}

const DEFAULT_MESSAGES = {
  401: 'This engine requires an API key.',
  403: 'This API key is not allowed to do that.',
  404: 'Not found.',
  429: 'Too many requests. Please slow down.',
  503: 'The engine is busy right now.',
};

/** Resolve a path against the page, so the page also works under a path prefix. */
export function apiUrl(path) {
  return new URL(path, document.baseURI);
}

/** fetch + JSON + the contract's error shape. Throws ApiError on anything but 2xx. */
export async function request(method, path, { body, headers = {} } = {}) {
  const sendHeaders = { Accept: 'application/json', ...headers };
  if (body !== undefined) sendHeaders['Content-Type'] = 'application/json';
  const key = getApiKey();
  if (key) sendHeaders.Authorization = `Bearer ${key}`;

  let response;
  try {
    response = await fetch(apiUrl(path), {
      method,
      headers: sendHeaders,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError({ code: 'network', message: 'Cannot reach the engine. Check your connection and try again.' });
  }

  let payload = null;
  const text = await response.text().catch(() => '');
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const err = payload && typeof payload.error === 'object' && payload.error ? payload.error : {};
    throw new ApiError({
      status: response.status,
      code: typeof err.code === 'string' ? err.code : `http_${response.status}`,
      message:
        typeof err.message === 'string' && err.message
          ? err.message
          : DEFAULT_MESSAGES[response.status] ?? `The engine answered ${response.status}.`,
      field: typeof err.field === 'string' ? err.field : null,
      retryAfter: parseRetryAfter(response.headers.get('Retry-After')),
    });
  }
  return payload;
}

export const api = {
  markets: () => request('GET', 'api/markets'),

  /** POST an order; the Idempotency-Key makes a retry after a lost answer harmless. */
  execute: (body, idempotencyKey) =>
    request('POST', 'api/orders/execute', { body, headers: idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {} }),

  order: (orderId) => request('GET', `api/orders/${encodeURIComponent(orderId)}`),

  /** POST /api/quotes: both venues, the route, min-out, price impact, fees and a quoteId. */
  quote: (body) => request('POST', 'api/quotes', { body }),

  /** Cancel an open (limit or stop) order. */
  cancel: (orderId) => request('POST', `api/orders/${encodeURIComponent(orderId)}/cancel`, { body: {} }),

  orders: ({ limit = 20, cursor = null, status = '' } = {}) => {
    const params = new URLSearchParams({ limit: String(limit) });
    if (cursor) params.set('cursor', cursor);
    if (status) params.set('status', status);
    return request('GET', `api/orders?${params}`);
  },
};

/** A fresh idempotency key. crypto.randomUUID needs a secure context; getRandomValues does not. */
export function newIdempotencyKey() {
  if (globalThis.crypto?.randomUUID && globalThis.isSecureContext) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
