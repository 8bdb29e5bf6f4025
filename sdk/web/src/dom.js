// DOM helpers shared by the SDK's parts. Message data only ever reaches the page through
// these: text through textContent, URLs and colours only after they pass a check.

/**
 * The value as an absolute http(s) URL, or null. Anything else (javascript:, data:,
 * relative paths, non-strings) is refused.
 * @param {unknown} value
 * @returns {string | null}
 */
export function safeUrl(value) {
  if (typeof value !== "string" || value.trim() === "") return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * The value if the browser takes it as a CSS colour, or null.
 * @param {unknown} value
 * @returns {string | null}
 */
export function safeColor(value) {
  if (typeof value !== "string" || value.length > 100) return null;
  const css = globalThis.CSS;
  return css && typeof css.supports === "function" && css.supports("color", value) ? value : null;
}

/**
 * A new element with a class and text (set as text, never parsed as markup).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string | null | undefined} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/**
 * Add a stylesheet to the page once (by id). The SDK's rules are plain CSS with custom
 * properties (`--ph-*`) a page can override.
 * @param {string} id
 * @param {string} css
 */
export function injectStyles(id, css) {
  if (document.querySelector(`style[data-pigeonhole="${id}"]`)) return;
  const style = document.createElement("style");
  style.setAttribute("data-pigeonhole", id);
  style.textContent = css;
  document.head.appendChild(style);
}
