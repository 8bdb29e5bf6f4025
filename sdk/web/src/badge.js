// The unread badge: the App Inbox's unread count (or one category's), live.

import { el, injectStyles } from "./dom.js";

/**
 * @typedef {import("./live.js").Context} Context
 * @typedef {import("./live.js").InboxCounts} InboxCounts
 * @typedef {{category?: string, label?: (n: number) => string}} BadgeOptions
 */

/**
 * The counts of GET /v1/inbox/unread-count (`byCategory: [{category, unread}]`) as the
 * "inbox" event carries them (`byCategory: {[category or ""]: n}`).
 * @param {{unreadCount: number, byCategory?: {category: string | null, unread: number}[]}} answer
 * @returns {InboxCounts}
 */
export function countsOf(answer) {
  /** @type {Record<string, number>} */
  const byCategory = {};
  for (const row of answer.byCategory ?? []) byCategory[row.category ?? ""] = row.unread;
  return { unreadCount: answer.unreadCount, byCategory };
}

/**
 * The unread count to show: the total, or one category's (0 when it has none unread);
 * null when the counts at hand cannot say.
 * @param {InboxCounts} counts
 * @param {string | undefined} category
 * @returns {number | null}
 */
export function unreadOf(counts, category) {
  if (category === undefined) return counts.unreadCount;
  return counts.byCategory ? counts.byCategory[category] ?? 0 : null;
}

/**
 * Fetch the unread counts.
 * @param {Context} ctx
 * @returns {Promise<InboxCounts>}
 */
export async function fetchCounts(ctx) {
  return countsOf(await ctx.client.request("GET", "/v1/inbox/unread-count"));
}

export class Badge {
  /**
   * @param {Context} ctx
   * @param {HTMLElement} element
   * @param {BadgeOptions} [options]
   */
  constructor(ctx, element, options = {}) {
    this.ctx = ctx;
    this.options = options;
    this.destroyed = false;
    injectStyles("badge", STYLES);
    this.node = el("span", "ph-badge");
    this.node.setAttribute("role", "status");
    this.node.hidden = true;
    element.appendChild(this.node);
    this.off = ctx.emitter.on("inbox", (/** @type {InboxCounts} */ counts) => this.update(counts));
    const known = unreadOf(ctx.live.counts, options.category);
    if (known !== null) this.show(known);
    else void this.refetch();
  }

  /** @param {InboxCounts} counts */
  update(counts) {
    const unread = unreadOf(counts, this.options.category);
    if (unread === null) void this.refetch();
    else this.show(unread);
  }

  async refetch() {
    try {
      const counts = await fetchCounts(this.ctx);
      const unread = unreadOf(counts, this.options.category);
      if (unread !== null) this.show(unread);
    } catch (error) {
      this.ctx.emitter.emit("error", { error });
    }
  }

  /** @param {number} unread */
  show(unread) {
    if (this.destroyed) return;
    this.node.textContent = unread > 99 ? "99+" : String(unread);
    this.node.dataset.count = String(unread);
    const label = this.options.label ?? ((n) => (n === 1 ? "1 unread message" : `${n} unread messages`));
    this.node.setAttribute("aria-label", label(unread));
    this.node.hidden = unread === 0;
  }

  destroy() {
    this.destroyed = true;
    this.off();
    this.node.remove();
  }
}

// --ph-badge-bg (default: --ph-accent), --ph-badge-fg, --ph-font
const STYLES = `
.ph-badge{display:inline-flex;align-items:center;justify-content:center;min-width:1.4em;height:1.4em;padding:0 .4em;box-sizing:border-box;border-radius:999px;background:var(--ph-badge-bg,var(--ph-accent,#e03131));color:var(--ph-badge-fg,#fff);font:600 .75rem/1 var(--ph-font,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif)}
.ph-badge[hidden]{display:none}
`;
