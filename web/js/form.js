// The order form: token resolution, inline validation, field and general errors.

import { h, replaceChildren } from './dom.js';
import { formatBps, looksLikeMint, parseAmount, parseSlippage, shortenMiddle } from './format.js';

/** Field names as the API names them; each input's id is its field name, its error is #error-<field>. */
export const FIELDS = [
  'tokenIn', 'tokenOut', 'amount', 'amountMode', 'slippageBps', 'orderType', 'triggerPrice', 'minLiquidity', 'maxPrice', 'expiresInS',
];
/** The engine's field names that this form shows under another input. */
const ALIASES = { limitPrice: 'triggerPrice', stopPrice: 'triggerPrice', type: 'orderType', amountOut: 'amount' };

/** The tokens of /api/markets, looked up by symbol (any case) or mint. */
export class TokenBook {
  constructor(tokens = []) {
    this.tokens = tokens.filter((t) => t && typeof t.symbol === 'string' && typeof t.mint === 'string');
    this.bySymbol = new Map(this.tokens.map((t) => [t.symbol.toUpperCase(), t]));
    this.byMint = new Map(this.tokens.map((t) => [t.mint, t]));
  }

  get loaded() {
    return this.tokens.length > 0;
  }

  /**
   * What the user typed → { kind, token }.
   *   kind 'empty' | 'known' (a listed token) | 'mint' (unlisted address, decimals unknown)
   *        | 'unchecked' (markets not loaded: the engine will judge) | 'unknown'
   */
  resolve(text) {
    const value = String(text ?? '').trim();
    if (!value) return { kind: 'empty', token: null };
    const known = this.byMint.get(value) ?? this.bySymbol.get(value.toUpperCase());
    if (known) return { kind: 'known', token: known };
    if (looksLikeMint(value)) return { kind: 'mint', token: { symbol: null, mint: value, decimals: null } };
    if (!this.loaded) return { kind: 'unchecked', token: { symbol: value, mint: null, decimals: null } };
    return { kind: 'unknown', token: null };
  }

  /** A token object for display, from a symbol or mint typed or sent. */
  describe(text) {
    return this.resolve(text).token ?? { symbol: String(text ?? ''), mint: null, decimals: null };
  }
}

/**
 * Validate the raw form values. Returns { errors: { field: message }, body, tokens }.
 * `body` is the request body to send when there are no errors.
 */
export function validateOrder(values, book) {
  const errors = {};
  const tin = book.resolve(values.tokenIn);
  const tout = book.resolve(values.tokenOut);

  const tokenError = (resolved, emptyMessage) => {
    if (resolved.kind === 'empty') return emptyMessage;
    if (resolved.kind === 'unknown') return 'Unknown token. Pick one from the list or paste a mint address.';
    return null;
  };
  const inError = tokenError(tin, 'Choose the token to sell.');
  const outError = tokenError(tout, 'Choose the token to buy.');
  if (inError) errors.tokenIn = inError;
  if (outError) errors.tokenOut = outError;
  if (!inError && !outError && sameToken(tin.token, tout.token)) {
    errors.tokenOut = 'Token out must differ from token in.';
  }

  // "Receive exactly" (exact-out): the amount is of token out, sent as amountOut
  const exactOut = values.amountMode === 'out';
  const amountToken = exactOut ? tout.token : tin.token;
  const amount = parseAmount(values.amount, amountToken?.decimals ?? null, amountToken?.symbol ?? '');
  if (amount.error) errors.amount = amount.error;

  const slippage = parseSlippage(values.slippageBps);
  if (slippage.error) errors.slippageBps = slippage.error;

  const type = ['limit', 'stop', 'sniper'].includes(values.orderType) ? values.orderType : 'market';
  let expires = null;
  const maxPriceText = String(values.maxPrice ?? '').trim();
  if (type === 'sniper') {
    // both in token in: the pool's holdings of it, and the most of it paid per whole token out
    const decimals = tin.token?.decimals ?? null;
    const symbol = tin.token?.symbol ?? '';
    const liquidity = parseAmount(values.minLiquidity, decimals, symbol);
    if (liquidity.error) errors.minLiquidity = liquidity.error.replace('Enter an amount.', 'Enter the liquidity.');
    if (maxPriceText !== '') {
      const bound = parseAmount(maxPriceText, decimals, symbol);
      if (bound.error) errors.maxPrice = bound.error.replace('amount', 'price').replace('Enter an price.', 'Enter a price.');
    }
  } else if (type !== 'market') {
    const price = parseAmount(values.triggerPrice, tout.token?.decimals ?? null, tout.token?.symbol ?? '');
    if (price.error) errors.triggerPrice = price.error.replace('amount', 'price').replace('Enter an price.', 'Enter a price.');
  }
  if (exactOut && type !== 'market') errors.amountMode = 'Receive exactly is for market orders only.';
  if (type !== 'market') {
    const text = String(values.expiresInS ?? '').trim();
    if (text !== '') {
      if (!/^\d{1,9}$/.test(text) || Number(text) < 1) errors.expiresInS = 'Enter a whole number of seconds.';
      else expires = Number(text);
    }
  }

  const body = {
    // a listed token is sent by its canonical symbol, anything else as typed
    tokenIn: wireName(tin, values.tokenIn),
    tokenOut: wireName(tout, values.tokenOut),
    [exactOut ? 'amountOut' : 'amount']: String(values.amount ?? '').trim(),
  };
  if (slippage.bps != null) body.slippageBps = slippage.bps;
  if (type === 'sniper') {
    body.type = type;
    body.minLiquidity = String(values.minLiquidity ?? '').trim();
    if (maxPriceText !== '') body.maxPrice = maxPriceText;
    if (expires != null) body.expiresInS = expires;
  } else if (type !== 'market') {
    body.type = type;
    body[type === 'limit' ? 'limitPrice' : 'stopPrice'] = String(values.triggerPrice ?? '').trim();
    if (expires != null) body.expiresInS = expires;
  }
  return { errors, body, tokens: { tokenIn: tin.token, tokenOut: tout.token } };
}

function wireName(resolved, typed) {
  if (resolved.kind === 'known') return resolved.token.symbol;
  return String(typed ?? '').trim();
}

function sameToken(a, b) {
  if (!a || !b) return false;
  if (a.mint && b.mint) return a.mint === b.mint;
  return String(a.symbol ?? a.mint).toUpperCase() === String(b.symbol ?? b.mint).toUpperCase();
}

/**
 * The form's DOM. Errors are shown only for fields the user has left (blur)
 * or after a submit attempt, so typing is not interrupted by red text.
 */
export class OrderForm {
  /**
   * @param {HTMLFormElement} form
   * @param {object} opts { onSubmit(result), getBook(): TokenBook }
   */
  constructor(form, { onSubmit, getBook }) {
    this.form = form;
    this.getBook = getBook;
    this.onSubmit = onSubmit;
    this.inputs = Object.fromEntries(FIELDS.map((f) => [f, form.elements.namedItem(f)]));
    this.shown = new Set(); // fields whose client-side errors are visible
    this.serverErrors = new Map(); // field → message from the engine, until the field changes
    this.submitButton = form.querySelector('button[type="submit"]');
    this.general = document.getElementById('form-error');

    for (const field of FIELDS) {
      const input = this.inputs[field];
      input.addEventListener('input', () => {
        this.serverErrors.delete(field);
        this.refresh();
      });
      input.addEventListener('blur', () => {
        if (input.value.trim() !== '') this.shown.add(field);
        this.refresh();
      });
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    document.getElementById('swap-tokens')?.addEventListener('click', () => this.swapTokens());
    this.refresh();
  }

  values() {
    return Object.fromEntries(FIELDS.map((f) => [f, this.inputs[f].value]));
  }

  submit() {
    if (this.submitButton.disabled) return;
    const result = this.validate();
    if (result) this.onSubmit(result);
  }

  /** Validate every field and show the errors; the result when there are none, else null. */
  validate() {
    this.serverErrors.clear();
    this.showGeneral('');
    const result = validateOrder(this.values(), this.getBook());
    FIELDS.forEach((f) => this.shown.add(f));
    this.refresh(result);
    const invalid = FIELDS.find((f) => result.errors[f]);
    if (invalid) {
      this.inputs[invalid].focus();
      return null;
    }
    return result;
  }

  /** Re-validate and redraw every error and hint. */
  refresh(result = validateOrder(this.values(), this.getBook())) {
    for (const field of FIELDS) {
      const message = this.serverErrors.get(field) ?? (this.shown.has(field) ? result.errors[field] : null);
      this.setFieldError(field, message ?? '');
    }
    this.renderHints(result);
  }

  setFieldError(field, message) {
    const input = this.inputs[field];
    const el = document.getElementById(`error-${field}`);
    // The element stays in the accessibility tree (never `hidden`), so a
    // screen reader announces the text when it appears (role="alert").
    if (el.textContent !== message) el.textContent = message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  /** An error the engine attached to a field: shown beside it until the field is edited. */
  showServerError(field, message) {
    field = ALIASES[field] ?? field;
    if (!FIELDS.includes(field)) return false;
    this.serverErrors.set(field, message);
    this.refresh();
    this.inputs[field].focus();
    return true;
  }

  /** The general (non-field) error area; '' clears it. */
  showGeneral(message, ...extra) {
    replaceChildren(this.general, message, extra);
  }

  setBusy(busy) {
    this.submitButton.disabled = busy;
    this.submitButton.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  swapTokens() {
    const { tokenIn, tokenOut } = this.inputs;
    [tokenIn.value, tokenOut.value] = [tokenOut.value, tokenIn.value];
    this.serverErrors.delete('tokenIn');
    this.serverErrors.delete('tokenOut');
    this.refresh();
  }

  /** Fill the token datalist and default the pickers to the first two tokens. */
  setTokens(book) {
    const list = document.getElementById('token-options');
    replaceChildren(list, book.tokens.map((t) => h('option', { value: t.symbol, label: `${t.symbol} · ${t.mint}` })));
    const { tokenIn, tokenOut } = this.inputs;
    if (!tokenIn.value && book.tokens[0]) tokenIn.value = book.tokens[0].symbol;
    if (!tokenOut.value && book.tokens[1]) tokenOut.value = book.tokens[1].symbol;
    this.refresh();
  }

  renderHints(result) {
    const book = this.getBook();
    for (const field of ['tokenIn', 'tokenOut']) {
      const resolved = book.resolve(this.inputs[field].value);
      let text = 'A symbol from the list, or a mint address.';
      if (resolved.kind === 'known') {
        const t = resolved.token;
        text = `${t.symbol} · ${t.decimals} decimals · ${shortenMiddle(t.mint)}`;
      } else if (resolved.kind === 'mint') {
        text = 'Unlisted mint address: the engine will check it.';
      }
      setText(`hint-${field}`, text);
    }
    const tin = result.tokens.tokenIn;
    const exactOut = this.inputs.amountMode.value === 'out';
    const unit = exactOut ? result.tokens.tokenOut : tin;
    setText(
      'hint-amount',
      unit?.decimals != null
        ? `In ${unit.symbol}, up to ${unit.decimals} decimal places.`
        : `In units of the token ${exactOut ? 'out' : 'in'}.`,
    );
    setText(
      'hint-amountMode',
      exactOut
        ? 'Receive exactly this amount, spending at most the quote plus slippage.'
        : 'Spend exactly this amount; receive at least the quote less slippage.',
    );
    const type = this.inputs.orderType.value;
    const priced = type === 'limit' || type === 'stop';
    document.getElementById('field-triggerPrice').hidden = !priced;
    document.getElementById('field-minLiquidity').hidden = type !== 'sniper';
    document.getElementById('field-maxPrice').hidden = type !== 'sniper';
    document.getElementById('field-expiresInS').hidden = !priced && type !== 'sniper';
    setText('label-triggerPrice', type === 'stop' ? 'Stop price' : 'Limit price');
    const tout = result.tokens.tokenOut;
    const per = `${tout?.symbol ?? 'token out'} per ${tin?.symbol ?? 'token in'}`;
    setText(
      'hint-orderType',
      type === 'limit'
        ? 'Rests until the pool pays at least your price.'
        : type === 'stop'
          ? 'Rests until the market falls to your price, then sells.'
          : type === 'sniper'
            ? 'Rests until a pool of the pair (none may exist yet) holds your liquidity, then buys at once.'
            : 'Executes now at the best route.',
    );
    setText('hint-triggerPrice', `In ${per}.`);
    setText('hint-minLiquidity', `${tin?.symbol ?? 'Token in'} the new pool must hold.`);
    setText('hint-maxPrice', `Optional. In ${tin?.symbol ?? 'token in'} per ${tout?.symbol ?? 'token out'}.`);
    setText('hint-expiresInS', 'Empty means the engine maximum.');
    const slip = parseSlippage(this.inputs.slippageBps.value);
    setText(
      'hint-slippageBps',
      slip.bps != null ? `${formatBps(slip.bps)} price tolerance.` : 'Empty means the engine default. 100 bps = 1%.',
    );
  }
}

function setText(id, text) {
  const el = document.getElementById(id);
  if (el && el.textContent !== text) el.textContent = text;
}
