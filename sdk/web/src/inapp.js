// In-app messages on a web page: the seed's templates (bottom banner, top banner, image,
// video), one at a time in the phone home's order (highest priority, then newest).
//
// Each display reports `view` once; a click on the message reports `click`, opens its
// http(s) action and closes it; the close button and Escape report `dismiss`. A message is
// shown at most once per page load, never after its `expiresAt`, and never more often than
// its views allow: the displays this browser made count at once, before the server's
// `viewsLeft` reflects them (see `viewsLeft`). Every field is rendered as text.

import { el, injectStyles, safeColor, safeUrl } from "./dom.js";

/**
 * @typedef {import("./live.js").Context} Context
 * @typedef {import("./live.js").InAppMessage} InAppMessage
 * @typedef {{left: number}} LocalViews views left as this browser counted them
 * @typedef {{
 *   openUrl?: (url: string, message: InAppMessage) => void,
 *   container?: HTMLElement,
 *   actionLabel?: string,
 *   closeLabel?: string,
 * }} InAppOptions
 */

const VIEWS = "inapp.views";

/**
 * The views left of a message: the fewer of the server's count and this browser's own
 * (a display counted here before its `view` event reached the server).
 * @param {InAppMessage} message
 * @param {Record<string, LocalViews>} local
 */
export function viewsLeft(message, local) {
  const server = Number.isFinite(message.viewsLeft) ? message.viewsLeft : message.maxViews;
  const mine = local[message.id]?.left;
  return typeof mine === "number" ? Math.min(server, mine) : server;
}

/**
 * The messages to show now, in the order given (the phone home's): not yet shown on this
 * page, not expired, with views left.
 * @param {InAppMessage[]} messages
 * @param {{now: number, shown: Set<string>, local: Record<string, LocalViews>}} state
 * @returns {InAppMessage[]}
 */
export function showable(messages, { now, shown, local }) {
  return messages.filter(
    (m) =>
      !shown.has(m.id) &&
      !(m.expiresAt && Date.parse(m.expiresAt) <= now) &&
      viewsLeft(m, local) > 0,
  );
}

/**
 * After a display: the local counts with this message's views left one lower, and the
 * counts of messages no longer pending dropped.
 * @param {Record<string, LocalViews>} local
 * @param {InAppMessage} message
 * @param {InAppMessage[]} pending
 * @returns {Record<string, LocalViews>}
 */
export function countDisplay(local, message, pending) {
  /** @type {Record<string, LocalViews>} */
  const kept = {};
  for (const m of pending) if (local[m.id]) kept[m.id] = local[m.id];
  kept[message.id] = { left: Math.max(0, viewsLeft(message, local) - 1) };
  return kept;
}

/**
 * Which layout a message takes: the seed's image and video templates carry `image` /
 * `video`; otherwise a banner at the bottom, or at the top with `orientation: "top"`.
 * @param {Record<string, any>} content
 * @returns {"video" | "image" | "top" | "bottom"}
 */
export function layoutOf(content) {
  if (safeUrl(content.video)) return "video";
  if (safeUrl(content.image)) return "image";
  return content.orientation === "top" ? "top" : "bottom";
}

/**
 * The http(s) URL a click opens, or null (the seed's `action: {type: "url", value}`).
 * @param {Record<string, any>} content
 */
export function actionUrl(content) {
  const action = content.action;
  if (!action || typeof action !== "object") return null;
  const type = String(action.type ?? "url").toLowerCase();
  return type === "url" || type === "link" || type === "openurl" ? safeUrl(action.value) : null;
}

export class InAppPresenter {
  /**
   * @param {Context} ctx
   * @param {InAppOptions} [options]
   */
  constructor(ctx, options = {}) {
    this.ctx = ctx;
    this.options = options;
    /** @type {Set<string>} */
    this.shown = new Set();
    /** @type {InAppMessage[]} */
    this.pending = [];
    /** @type {{message: InAppMessage, root: HTMLElement, timer: ReturnType<typeof setTimeout> | null, focus: Element | null} | null} */
    this.current = null;
    this.destroyed = false;
    this.onKey = (/** @type {KeyboardEvent} */ event) => {
      if (event.key === "Escape" && this.current) this.dismiss();
    };
    injectStyles("inapp", STYLES);
    this.off = ctx.emitter.on("sync", (/** @type {{messages: InAppMessage[]}} */ state) =>
      this.offer(state.messages),
    );
    void ctx.live.sync().catch(() => {});
  }

  /** @param {InAppMessage[]} messages the complete pending set */
  offer(messages) {
    if (this.destroyed) return;
    this.pending = Array.isArray(messages) ? messages : [];
    const current = this.current;
    if (current && !this.pending.some((m) => m.id === current.message.id)) {
      this.close(); // clicked or removed elsewhere, or withdrawn: gone without a report
      return;
    }
    if (!current) this.next();
  }

  next() {
    if (this.destroyed || this.current) return;
    const local = this.ctx.store.get(VIEWS) ?? {};
    const [message] = showable(this.pending, { now: Date.now(), shown: this.shown, local });
    if (message) this.display(message, local);
  }

  /**
   * @param {InAppMessage} message
   * @param {Record<string, LocalViews>} local
   */
  display(message, local) {
    this.shown.add(message.id);
    this.ctx.store.set(VIEWS, countDisplay(local, message, this.pending));
    const root = render(message, this.options, {
      click: () => this.click(),
      dismiss: () => this.dismiss(),
    });
    const focus = document.activeElement;
    (this.options.container ?? document.body).appendChild(root);
    const expires = message.expiresAt ? Date.parse(message.expiresAt) - Date.now() : NaN;
    const timer = Number.isFinite(expires) ? setTimeout(() => this.close(), expires) : null;
    this.current = { message, root, timer, focus };
    document.addEventListener("keydown", this.onKey);
    if (root.getAttribute("aria-modal") === "true") {
      /** @type {HTMLElement | null} */ (root.querySelector(".ph-inapp__close"))?.focus();
    }
    void this.ctx.client.report(message.id, "view");
    this.ctx.emitter.emit("inapp:view", { message });
  }

  click() {
    if (!this.current) return;
    const { message } = this.current;
    const url = actionUrl(message.content ?? {});
    void this.ctx.client.report(message.id, "click");
    this.ctx.live.forget(message.id); // a click removes an in-app message whatever views are left
    this.ctx.emitter.emit("inapp:click", { message, url });
    this.close();
    if (url) {
      if (this.options.openUrl) this.options.openUrl(url, message);
      else window.open(url, "_blank", "noopener");
    }
  }

  dismiss() {
    if (!this.current) return;
    const { message } = this.current;
    void this.ctx.client.report(message.id, "dismiss");
    this.ctx.emitter.emit("inapp:dismiss", { message });
    this.close();
  }

  /** Take the current message off the page and show the next one. */
  close() {
    const current = this.current;
    if (!current) return;
    this.current = null;
    if (current.timer) clearTimeout(current.timer);
    document.removeEventListener("keydown", this.onKey);
    current.root.remove();
    if (current.focus instanceof HTMLElement && document.contains(current.focus)) {
      current.focus.focus();
    }
    setTimeout(() => this.next(), 0);
  }

  destroy() {
    this.destroyed = true;
    this.off();
    this.close();
  }
}

let ids = 0;

/**
 * The message's element: a banner, or a card over a backdrop (image, video).
 * @param {InAppMessage} message
 * @param {InAppOptions} options
 * @param {{click: () => void, dismiss: () => void}} on
 * @returns {HTMLElement}
 */
function render(message, options, on) {
  const content = message.content ?? {};
  const layout = layoutOf(content);
  const modal = layout === "image" || layout === "video";
  const titleId = `ph-inapp-title-${++ids}`;
  const root = el("div", `ph-inapp ph-inapp--${layout}`);
  root.setAttribute("role", "dialog");
  root.setAttribute("aria-labelledby", titleId);
  root.dataset.messageId = message.id;
  if (modal) root.setAttribute("aria-modal", "true");
  else root.setAttribute("aria-live", "polite");
  const accent = safeColor(content.color);
  if (accent) root.style.setProperty("--ph-accent", accent);

  const box = el("div", "ph-inapp__box");
  const url = actionUrl(content);
  const body = url ? el("button", "ph-inapp__body") : el("div", "ph-inapp__body");
  if (url) {
    /** @type {HTMLButtonElement} */ (body).type = "button";
    body.addEventListener("click", on.click);
  }
  const media = mediaOf(content, layout);
  if (media) body.appendChild(media);
  const icon = safeUrl(content.icon);
  const text = el("div", "ph-inapp__text");
  if (icon && !modal) {
    const img = el("img", "ph-inapp__icon");
    img.src = icon;
    img.alt = "";
    body.insertBefore(img, body.firstChild);
  }
  const title = el("p", "ph-inapp__title", content.title);
  title.id = titleId;
  text.append(title, el("p", "ph-inapp__message", content.text));
  body.appendChild(text);
  box.appendChild(body);
  if (url && modal) {
    const cta = el("button", "ph-inapp__action", options.actionLabel ?? "Open");
    cta.type = "button";
    cta.addEventListener("click", on.click);
    box.appendChild(cta);
  }
  const close = el("button", "ph-inapp__close", "×");
  close.type = "button";
  close.setAttribute("aria-label", options.closeLabel ?? "Close");
  close.addEventListener("click", on.dismiss);
  box.appendChild(close);
  if (modal) {
    const backdrop = el("div", "ph-inapp__backdrop");
    backdrop.addEventListener("click", on.dismiss);
    root.appendChild(backdrop);
  }
  root.appendChild(box);
  return root;
}

/**
 * @param {Record<string, any>} content
 * @param {string} layout
 * @returns {HTMLElement | null}
 */
function mediaOf(content, layout) {
  if (layout === "video") {
    const video = el("video", "ph-inapp__media");
    video.src = /** @type {string} */ (safeUrl(content.video));
    video.controls = true;
    video.playsInline = true;
    video.preload = "metadata";
    return video;
  }
  const source = layout === "image" ? safeUrl(content.image) : safeUrl(content.mainImage);
  if (!source) return null;
  const img = el("img", layout === "image" ? "ph-inapp__media" : "ph-inapp__main-image");
  img.src = source;
  img.alt = "";
  return img;
}

// Themable with custom properties on any ancestor (or :root): --ph-font, --ph-bg, --ph-fg,
// --ph-muted, --ph-accent (a message's `color` sets it per message), --ph-radius,
// --ph-shadow, --ph-z, --ph-inapp-width, --ph-backdrop.
const STYLES = `
.ph-inapp{--_accent:var(--ph-accent,#3b5bdb);position:fixed;left:0;right:0;z-index:var(--ph-z,2147483000);display:flex;justify-content:center;padding:16px;pointer-events:none;font-family:var(--ph-font,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);color:var(--ph-fg,#1d2129)}
.ph-inapp--bottom{bottom:0}
.ph-inapp--top{top:0}
.ph-inapp--image,.ph-inapp--video{inset:0;align-items:center}
.ph-inapp__backdrop{position:absolute;inset:0;background:var(--ph-backdrop,rgba(15,18,25,.55));pointer-events:auto}
.ph-inapp__box{position:relative;pointer-events:auto;display:flex;align-items:stretch;width:min(100%,var(--ph-inapp-width,560px));background:var(--ph-bg,#fff);border-radius:var(--ph-radius,12px);box-shadow:var(--ph-shadow,0 8px 28px rgba(0,0,0,.22));border-left:6px solid var(--_accent);overflow:hidden}
.ph-inapp--image .ph-inapp__box,.ph-inapp--video .ph-inapp__box{flex-direction:column;border-left:0;border-top:6px solid var(--_accent);width:min(100%,var(--ph-inapp-width,420px))}
.ph-inapp__body{all:unset;box-sizing:border-box;display:flex;gap:12px;align-items:center;flex:1;padding:14px 44px 14px 16px;min-width:0;cursor:default}
button.ph-inapp__body{cursor:pointer}
button.ph-inapp__body:focus-visible,.ph-inapp__close:focus-visible,.ph-inapp__action:focus-visible{outline:3px solid var(--_accent);outline-offset:2px}
.ph-inapp--image .ph-inapp__body,.ph-inapp--video .ph-inapp__body{flex-direction:column;align-items:stretch;padding:0 0 8px}
.ph-inapp__icon{width:40px;height:40px;border-radius:8px;object-fit:cover;flex:none}
.ph-inapp__main-image{width:64px;height:64px;border-radius:8px;object-fit:cover;flex:none}
.ph-inapp__media{display:block;width:100%;max-height:60vh;object-fit:cover;background:#000}
.ph-inapp__text{min-width:0}
.ph-inapp--image .ph-inapp__text,.ph-inapp--video .ph-inapp__text{padding:12px 16px 0}
.ph-inapp__title{margin:0 0 4px;font-weight:650;font-size:1rem;line-height:1.3;overflow-wrap:anywhere}
.ph-inapp__message{margin:0;font-size:.9rem;line-height:1.4;color:var(--ph-muted,#4a5160);overflow-wrap:anywhere;white-space:pre-line}
.ph-inapp__action{margin:4px 16px 16px;padding:10px 16px;border:0;border-radius:calc(var(--ph-radius,12px) - 4px);background:var(--_accent);color:#fff;font:inherit;font-weight:600;cursor:pointer}
.ph-inapp__close{position:absolute;top:6px;right:6px;width:32px;height:32px;border:0;border-radius:50%;background:transparent;color:inherit;font:inherit;font-size:1.4rem;line-height:1;cursor:pointer}
.ph-inapp--image .ph-inapp__close,.ph-inapp--video .ph-inapp__close{background:rgba(255,255,255,.85)}
.ph-inapp__close:hover{background:rgba(0,0,0,.08)}
@media (prefers-reduced-motion:no-preference){.ph-inapp__box{animation:ph-inapp-in .18s ease-out}}
@keyframes ph-inapp-in{from{opacity:0;transform:translateY(8px)}to{opacity:1;transform:none}}
`;
