// Pure helpers: amount parsing and formatting, times, venue names.
// No DOM access here, so the logic can be exercised with plain `node`.
//
// Amounts follow the engine's rule: integer base units (BigInt) inside,
// decimal strings only at the edges. Never a float in an amount.

export const STATUSES = ['pending', 'routing', 'building', 'submitted', 'confirmed', 'failed'];
export const TERMINAL = new Set(['confirmed', 'failed']);

const DECIMAL_RE = /^(\d+)(?:\.(\d+))?$/;
const U64_MAX = (1n << 64n) - 1n;

/**
 * Parse a decimal amount typed by the user, mirroring the server's
 * `common.amounts.parse_amount`: trailing zeros beyond the token's decimals
 * are tolerated, real extra precision is not.
 * `decimals` may be null (unknown mint): then only the shape and sign are checked.
 * `symbol` only makes the message clearer.
 * Returns { raw: BigInt | null } or { error: string }.
 */
export function parseAmount(text, decimals, symbol = '') {
  const value = String(text ?? '').trim();
  if (value === '') return { error: 'Enter an amount.' };
  const match = DECIMAL_RE.exec(value);
  if (!match) return { error: 'Enter a positive number such as 1.5.' };
  const whole = match[1];
  let frac = match[2] ?? '';
  if (decimals == null) {
    if (/^0*$/.test(whole) && /^0*$/.test(frac)) return { error: 'The amount must be greater than zero.' };
    return { raw: null };
  }
  if (frac.length > decimals) {
    const trimmed = frac.replace(/0+$/, '');
    if (trimmed.length > decimals) {
      const token = symbol ? ` for ${symbol}` : '';
      return { error: decimals === 0 ? `No decimal places allowed${token}.` : `At most ${decimals} decimal places${token}.` };
    }
    frac = trimmed;
  }
  const scale = 10n ** BigInt(decimals);
  const raw = BigInt(whole) * scale + BigInt(frac.padEnd(decimals, '0') || '0');
  if (raw <= 0n) return { error: 'The amount must be greater than zero.' };
  if (raw > U64_MAX) return { error: 'The amount is too large.' };
  return { raw };
}

/** Slippage in basis points: an integer from 1 to 5000. Empty means "server default". */
export function parseSlippage(text) {
  const value = String(text ?? '').trim();
  if (value === '') return { bps: null };
  if (!/^\d+$/.test(value)) return { error: 'Enter a whole number of basis points (1–5000).' };
  const bps = Number(value);
  if (bps < 1 || bps > 5000) return { error: 'Slippage must be between 1 and 5000 bps.' };
  return { bps };
}

/** Base units → decimal string: ("1500000000", 9) → "1.5". Returns null on bad input. */
export function formatRaw(raw, decimals) {
  let value;
  try {
    value = BigInt(raw);
  } catch {
    return null;
  }
  if (decimals == null) return null;
  const negative = value < 0n;
  if (negative) value = -value;
  const scale = 10n ** BigInt(decimals);
  const whole = value / scale;
  const frac = decimals ? (value % scale).toString().padStart(decimals, '0').replace(/0+$/, '') : '';
  return (negative ? '-' : '') + (frac ? `${whole}.${frac}` : `${whole}`);
}

/** Share of `part` in `total` as a percentage string with up to 2 decimals: "62.5%". */
export function sharePercent(part, total) {
  try {
    const p = BigInt(part);
    const t = BigInt(total);
    if (t <= 0n) return null;
    const hundredths = (p * 10000n + t / 2n) / t; // rounded to 0.01 %
    const whole = hundredths / 100n;
    const frac = (hundredths % 100n).toString().padStart(2, '0').replace(/0+$/, '');
    return frac ? `${whole}.${frac}%` : `${whole}%`;
  } catch {
    return null;
  }
}

/** Each part's share of their sum: ["600", "400"] → ["60%", "40%"]; null where unknown. */
export function shareParts(parts) {
  let total = 0n;
  try {
    for (const part of parts) total += BigInt(part);
  } catch {
    return parts.map(() => null);
  }
  return parts.map((part) => sharePercent(part, total));
}

/** Basis points → percent text: 12 → "0.12%". */
export function formatBps(bps) {
  const n = Number(bps);
  if (!Number.isFinite(n)) return '—';
  const text = (n / 100).toFixed(2).replace(/\.?0+$/, '');
  return `${text}%`;
}

/**
 * ISO-8601 → epoch milliseconds, keeping sub-millisecond digits (the engine
 * writes microseconds; Date.parse drops everything after the milliseconds,
 * and step-to-step times on the simulated chain are often below 1 ms).
 */
export function parseInstant(iso) {
  const match = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/i.exec(String(iso ?? ''));
  if (!match) {
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? null : ms;
  }
  const base = Date.parse(match[1] + (match[3] ?? 'Z'));
  if (Number.isNaN(base)) return null;
  const fraction = match[2] ? Number(`0.${match[2]}`) * 1000 : 0;
  return base + fraction;
}

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** Epoch ms → local wall-clock time with milliseconds: "14:03:07.412". */
export function formatClock(ms) {
  if (ms == null) return '—';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Epoch ms → local date and time for tables: "2024-05-01 14:03:07". */
export function formatDateTime(ms) {
  if (ms == null) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in ms: one decimal below 10 ms, whole ms above, thousands grouped. */
export function formatMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return '—';
  if (Math.abs(ms) < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms).toLocaleString('en-US')} ms`;
}

const VENUES = {
  raydium_cpmm: 'Raydium CPMM',
  meteora_dlmm: 'Meteora DLMM',
  split: 'Split',
};

/** Human name of a venue id; unknown ids are shown as they are. */
export function venueLabel(venue) {
  return VENUES[venue] ?? String(venue ?? '—');
}

/** "So11111111111111111111111111111111111111112" → "So11…1112". */
export function shortenMiddle(text, head = 4, tail = 4) {
  const s = String(text ?? '');
  return s.length <= head + tail + 1 ? s : `${s.slice(0, head)}…${s.slice(-tail)}`;
}

/** A Solana address is 32–44 base58 characters. */
export function looksLikeMint(text) {
  return /^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(String(text ?? ''));
}

/**
 * Fill the explorer template ("…/tx/{sig}?cluster=devnet") with a signature.
 * Returns null when there is no template or the result is not an http(s) URL,
 * so a hostile template can never become a javascript: link.
 */
export function explorerUrl(template, signature) {
  if (!template || !signature) return null;
  const filled = String(template).split('{sig}').join(encodeURIComponent(signature));
  try {
    const url = new URL(filled);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/** Seconds from a Retry-After header (delta-seconds or HTTP date); null if absent. */
export function parseRetryAfter(header, now = Date.now()) {
  if (header == null || header === '') return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}
