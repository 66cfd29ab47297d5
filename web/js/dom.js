// Tiny DOM builder. Every string becomes a text node or an attribute value;
// nothing here ever parses HTML, so server strings cannot inject markup.

/**
 * h('a', { class: 'x', href, dataset: { field: 'txHash' }, onclick }, 'text', child)
 * - `class`   → className
 * - `dataset` → data-* attributes
 * - `on…`     → event listeners
 * - `true`    → boolean attribute; null / undefined / false → omitted
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') {
      for (const [name, v] of Object.entries(value)) if (v != null) el.dataset[name] = String(v);
    } else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Append strings (as text), nodes and (nested) arrays; skip null/undefined/false. */
export function append(parent, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace all children of `parent`. */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** document.getElementById that fails loudly when the page and the script disagree. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id} in index.html`);
  return el;
}
