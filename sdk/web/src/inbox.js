// The App Inbox widget: tabs by category with unread counts, pinned first, read/unread,
// pin, archive, delete, mark all read, an archived view, paging, and live updates (the
// "inbox" event of the stream or of the polling fallback). Every field is rendered as text.

import { countsOf, unreadOf } from "./badge.js";
import { el, injectStyles, safeUrl } from "./dom.js";

/**
 * @typedef {import("./live.js").Context} Context
 * @typedef {import("./live.js").InboxCounts} InboxCounts
 * @typedef {{id: string, inboxContentId: string, title: string | null, text: string | null,
 *   url: string | null, openInNewTab: boolean, image: string | null, logo: string | null,
 *   category: string | null, deliveredAt: string, expiresAt: string | null, read: boolean,
 *   archived: boolean, pinned: boolean}} InboxMessage
 * @typedef {{name: string, label?: string}} Category
 * @typedef {{
 *   pageSize?: number,
 *   categories?: Category[],
 *   openUrl?: (url: string, newTab: boolean, message: InboxMessage) => void,
 *   title?: string,
 *   emptyText?: string,
 * }} InboxOptions
 */

const REFRESH_DEBOUNCE_MS = 150;
const RETRY_MS = 5000;
const MAX_LIMIT = 100;

/**
 * The query of one page of a view.
 * @param {{category: string, archived: boolean, limit: number, cursor?: string | null}} view
 */
export function pagePath({ category, archived, limit, cursor }) {
  const query = new URLSearchParams({ limit: String(Math.min(limit, MAX_LIMIT)) });
  if (archived) query.set("status", "archived");
  if (category) query.set("category", category);
  if (cursor) query.set("cursor", cursor);
  return `/v1/inbox?${query}`;
}

/**
 * The entries to show: pinned first and newest first as the server lists them, without
 * the ones whose `expiresAt` has passed (the server drops them on its next answer).
 * @param {InboxMessage[]} messages
 * @param {number} now
 */
export function visible(messages, now) {
  return messages.filter((m) => !(m.expiresAt && Date.parse(m.expiresAt) <= now));
}

/**
 * The tabs: "All" and one per category, each with its unread count.
 * @param {Category[]} categories
 * @param {InboxCounts} counts
 * @returns {{name: string, label: string, unread: number}[]}
 */
export function tabsOf(categories, counts) {
  return [
    { name: "", label: "All", unread: counts.unreadCount ?? 0 },
    ...categories.map((c) => ({
      name: c.name,
      label: c.label ?? c.name,
      unread: unreadOf(counts, c.name) ?? 0,
    })),
  ];
}

export class InboxWidget {
  /**
   * @param {Context} ctx
   * @param {HTMLElement} element
   * @param {InboxOptions} [options]
   */
  constructor(ctx, element, options = {}) {
    this.ctx = ctx;
    this.options = options;
    this.pageSize = Math.max(1, Math.min(MAX_LIMIT, options.pageSize ?? 20));
    /** how many entries the reader asked to see (a page more at each "Load more") */
    this.target = this.pageSize;
    this.category = "";
    this.archived = false;
    /** @type {InboxMessage[]} */
    this.messages = [];
    /** @type {string | null} */
    this.nextCursor = null;
    /** @type {Category[]} */
    this.categories = options.categories ?? [];
    /** @type {InboxCounts} */
    this.counts = { unreadCount: 0, byCategory: {} };
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    this.generation = 0;
    this.destroyed = false;
    injectStyles("inbox", STYLES);
    this.dom = skeleton(options);
    element.appendChild(this.dom.root);
    this.wire();
    this.off = ctx.emitter.on("inbox", (/** @type {InboxCounts} */ counts) => {
      if (counts.byCategory) this.setCounts(counts);
      this.scheduleRefresh();
    });
    void this.start();
  }

  async start() {
    if (!this.options.categories) {
      try {
        const answer = await this.ctx.client.request("GET", "/v1/preferences");
        this.categories = (answer.categories ?? []).map((/** @type {any} */ c) => ({
          name: c.name,
          label: c.name,
        }));
      } catch (error) {
        this.ctx.emitter.emit("error", { error }); // no category tabs; the rest works
      }
    }
    await this.refresh();
  }

  wire() {
    const { readAll, archivedToggle, more, list } = this.dom;
    readAll.addEventListener("click", () =>
      this.act("POST", "/v1/inbox/read-all", "read-all", this.category ? { category: this.category } : {}),
    );
    archivedToggle.addEventListener("click", () => {
      this.archived = !this.archived;
      archivedToggle.setAttribute("aria-pressed", String(this.archived));
      void this.refresh(true);
    });
    more.addEventListener("click", () => void this.loadMore());
    list.addEventListener("click", (event) => this.onListClick(event));
  }

  /** @param {MouseEvent} event */
  onListClick(event) {
    const target = /** @type {HTMLElement} */ (event.target);
    const button = target.closest("button[data-action]");
    const item = target.closest("li[data-id]");
    if (!button || !item) return;
    const id = /** @type {HTMLElement} */ (item).dataset.id ?? "";
    const message = this.messages.find((m) => m.id === id);
    const action = /** @type {HTMLElement} */ (button).dataset.action ?? "";
    if (!message) return;
    if (action === "open") this.open(message);
    else if (action === "delete") void this.act("DELETE", `/v1/inbox/${id}`, "delete", undefined, id);
    else void this.act("POST", `/v1/inbox/${id}/${action}`, action, undefined, id);
  }

  /** @param {InboxMessage} message */
  open(message) {
    if (!message.read) void this.act("POST", `/v1/inbox/${message.id}/read`, "read", undefined, message.id);
    const url = safeUrl(message.url);
    if (!url) return;
    if (this.options.openUrl) this.options.openUrl(url, message.openInNewTab, message);
    else if (message.openInNewTab) window.open(url, "_blank", "noopener");
    else window.location.assign(url);
  }

  /**
   * Do an action, then show what the server holds (never a state it refused).
   * @param {string} method
   * @param {string} path
   * @param {string} action
   * @param {unknown} [body]
   * @param {string} [id]
   */
  async act(method, path, action, body, id) {
    try {
      await this.ctx.client.request(method, path, body);
      this.ctx.emitter.emit("inbox:action", { id: id ?? null, action });
      this.status("");
    } catch (error) {
      this.ctx.emitter.emit("error", { error });
      this.status("That did not work. Please try again.");
    }
    await this.refresh();
  }

  scheduleRefresh() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, REFRESH_DEBOUNCE_MS);
  }

  /**
   * Load again as many entries as the reader asked to see (the first page after a change
   * of view), and the counts.
   * @param {boolean} [reset]
   */
  async refresh(reset = false) {
    const generation = ++this.generation;
    if (reset) {
      this.target = this.pageSize;
      this.renderLoading();
    }
    const wanted = this.target;
    try {
      /** @type {InboxMessage[]} */
      const messages = [];
      /** @type {string | null} */
      let cursor = null;
      do {
        const page = await this.ctx.client.request("GET", pagePath({ ...this.view(), limit: wanted - messages.length, cursor }));
        messages.push(...page.messages);
        cursor = page.nextCursor ?? null;
      } while (cursor && messages.length < wanted);
      const counts = countsOf(await this.ctx.client.request("GET", "/v1/inbox/unread-count"));
      if (generation !== this.generation || this.destroyed) return;
      this.messages = messages;
      this.nextCursor = cursor;
      this.setCounts(counts);
      this.status("");
      this.render();
    } catch (error) {
      if (generation !== this.generation || this.destroyed) return;
      this.ctx.emitter.emit("error", { error });
      this.status("Messages could not be loaded. Retrying…");
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.refresh(), RETRY_MS);
    }
  }

  /** One page more: what is shown is loaded again with it, so a live refresh racing
   * the click cannot lose it. */
  async loadMore() {
    if (!this.nextCursor) return;
    this.target += this.pageSize;
    await this.refresh();
  }

  view() {
    return { category: this.category, archived: this.archived };
  }

  /** @param {InboxCounts} counts */
  setCounts(counts) {
    this.counts = counts;
    this.renderTabs();
  }

  /** @param {string} text */
  status(text) {
    this.dom.status.textContent = text;
  }

  renderLoading() {
    this.dom.list.replaceChildren();
    this.dom.empty.hidden = true;
    this.dom.more.hidden = true;
    this.status("Loading…");
  }

  renderTabs() {
    const { tabs } = this.dom;
    tabs.replaceChildren(
      ...tabsOf(this.categories, this.counts).map((tab) => {
        const button = el("button", "ph-inbox__tab", tab.label);
        button.type = "button";
        button.setAttribute("role", "tab");
        button.dataset.category = tab.name;
        const selected = tab.name === this.category;
        button.setAttribute("aria-selected", String(selected));
        button.tabIndex = selected ? 0 : -1;
        if (tab.unread) {
          const count = el("span", "ph-inbox__tab-count", String(tab.unread));
          count.setAttribute("aria-label", `${tab.unread} unread`);
          button.appendChild(count);
        }
        button.addEventListener("click", () => this.selectTab(tab.name));
        button.addEventListener("keydown", (event) => this.onTabKey(event));
        return button;
      }),
    );
  }

  /** @param {string} name */
  selectTab(name) {
    if (name === this.category) return;
    this.category = name;
    this.renderTabs();
    /** @type {HTMLElement | null} */ (this.dom.tabs.querySelector('[aria-selected="true"]'))?.focus();
    void this.refresh(true);
  }

  /** @param {KeyboardEvent} event */
  onTabKey(event) {
    const names = tabsOf(this.categories, this.counts).map((t) => t.name);
    const at = names.indexOf(this.category);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    this.selectTab(names[(at + step + names.length) % names.length]);
  }

  render() {
    const { list, empty, more } = this.dom;
    const shown = visible(this.messages, Date.now());
    list.replaceChildren(...shown.map((m) => item(m)));
    empty.hidden = shown.length > 0;
    empty.textContent = this.archived ? "No archived messages." : this.options.emptyText ?? "No messages yet.";
    more.hidden = !this.nextCursor;
    this.dom.readAll.disabled = this.archived || !unreadIn(this.counts, this.category);
  }

  destroy() {
    this.destroyed = true;
    this.off();
    if (this.timer) clearTimeout(this.timer);
    this.dom.root.remove();
  }
}

/**
 * @param {InboxCounts} counts
 * @param {string} category
 */
function unreadIn(counts, category) {
  return (category ? unreadOf(counts, category) : counts.unreadCount) ?? 0;
}

/** @param {InboxOptions} options */
function skeleton(options) {
  const root = el("section", "ph-inbox");
  root.setAttribute("aria-label", options.title ?? "Inbox");
  const header = el("div", "ph-inbox__header");
  const heading = el("h2", "ph-inbox__heading", options.title ?? "Inbox");
  const readAll = el("button", "ph-inbox__read-all", "Mark all read");
  readAll.type = "button";
  const archivedToggle = el("button", "ph-inbox__archived-toggle", "Archived");
  archivedToggle.type = "button";
  archivedToggle.setAttribute("aria-pressed", "false");
  header.append(heading, readAll, archivedToggle);
  const tabs = el("div", "ph-inbox__tabs");
  tabs.setAttribute("role", "tablist");
  tabs.setAttribute("aria-label", "Categories");
  const status = el("p", "ph-inbox__status");
  status.setAttribute("role", "status");
  const list = el("ul", "ph-inbox__list");
  const empty = el("p", "ph-inbox__empty");
  empty.hidden = true;
  const more = el("button", "ph-inbox__more", "Load more");
  more.type = "button";
  more.hidden = true;
  root.append(header, tabs, status, list, empty, more);
  return { root, tabs, status, list, empty, more, readAll, archivedToggle };
}

/**
 * One entry of the list.
 * @param {InboxMessage} message
 * @returns {HTMLLIElement}
 */
function item(message) {
  const li = el("li", "ph-inbox__item");
  li.dataset.id = message.id;
  li.classList.toggle("ph-inbox__item--unread", !message.read);
  li.classList.toggle("ph-inbox__item--pinned", message.pinned);
  const open = el("button", "ph-inbox__open");
  open.type = "button";
  open.dataset.action = "open";
  const logo = safeUrl(message.logo);
  if (logo) {
    const img = el("img", "ph-inbox__logo");
    img.src = logo;
    img.alt = "";
    open.appendChild(img);
  }
  const body = el("span", "ph-inbox__body");
  const title = el("span", "ph-inbox__title", message.title);
  if (!message.read) title.prepend(el("span", "ph-inbox__sr", "Unread: "));
  const meta = el("span", "ph-inbox__meta", formatDate(message.deliveredAt));
  if (message.pinned) meta.prepend(el("span", "ph-inbox__pin", "Pinned"));
  body.append(title, el("span", "ph-inbox__text", message.text), meta);
  open.appendChild(body);
  const image = safeUrl(message.image);
  if (image) {
    const img = el("img", "ph-inbox__image");
    img.src = image;
    img.alt = "";
    open.appendChild(img);
  }
  const actions = el("span", "ph-inbox__actions");
  const name = message.title ?? "message";
  actions.append(
    action(message.read ? "unread" : "read", message.read ? "Mark unread" : "Mark read", name),
    action(message.pinned ? "unpin" : "pin", message.pinned ? "Unpin" : "Pin", name),
    action(message.archived ? "unarchive" : "archive", message.archived ? "Unarchive" : "Archive", name),
    action("delete", "Delete", name),
  );
  li.append(open, actions);
  return li;
}

/**
 * @param {string} name
 * @param {string} label
 * @param {string} title
 */
function action(name, label, title) {
  const button = el("button", `ph-inbox__action ph-inbox__action--${name}`, label);
  button.type = "button";
  button.dataset.action = name;
  button.setAttribute("aria-label", `${label}: ${title}`);
  return button;
}

/** @param {string} iso */
function formatDate(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// --ph-font, --ph-bg, --ph-fg, --ph-muted, --ph-accent, --ph-border, --ph-radius,
// --ph-unread-bg, --ph-inbox-max-height
const STYLES = `
.ph-inbox{--_accent:var(--ph-accent,#3b5bdb);font-family:var(--ph-font,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);color:var(--ph-fg,#1d2129);background:var(--ph-bg,#fff);border:1px solid var(--ph-border,#dee2e6);border-radius:var(--ph-radius,12px);overflow:hidden}
.ph-inbox__header{display:flex;align-items:center;gap:8px;padding:12px 16px;border-bottom:1px solid var(--ph-border,#dee2e6)}
.ph-inbox__heading{margin:0 auto 0 0;font-size:1.05rem}
.ph-inbox button{font:inherit;color:inherit;cursor:pointer}
.ph-inbox button:focus-visible{outline:3px solid var(--_accent);outline-offset:1px}
.ph-inbox__read-all,.ph-inbox__archived-toggle,.ph-inbox__more{border:1px solid var(--ph-border,#dee2e6);background:transparent;border-radius:999px;padding:4px 12px;font-size:.85rem}
.ph-inbox__archived-toggle[aria-pressed="true"]{background:var(--_accent);border-color:var(--_accent);color:#fff}
.ph-inbox button:disabled{opacity:.5;cursor:default}
.ph-inbox__tabs{display:flex;gap:4px;padding:8px 12px 0;border-bottom:1px solid var(--ph-border,#dee2e6);overflow-x:auto}
.ph-inbox__tab{border:0;background:transparent;padding:8px 10px;border-bottom:3px solid transparent;font-size:.9rem;white-space:nowrap}
.ph-inbox__tab[aria-selected="true"]{border-bottom-color:var(--_accent);font-weight:600}
.ph-inbox__tab-count{display:inline-block;margin-left:6px;min-width:1.3em;padding:0 .35em;border-radius:999px;background:var(--_accent);color:#fff;font-size:.75rem;line-height:1.3em;text-align:center}
.ph-inbox__status{margin:0;padding:0 16px;font-size:.85rem;color:var(--ph-muted,#5c6370)}
.ph-inbox__status:not(:empty){padding:8px 16px}
.ph-inbox__list{list-style:none;margin:0;padding:0;max-height:var(--ph-inbox-max-height,480px);overflow-y:auto}
.ph-inbox__item{display:flex;align-items:flex-start;gap:8px;padding:12px 16px;border-bottom:1px solid var(--ph-border,#dee2e6)}
.ph-inbox__item--unread{background:var(--ph-unread-bg,#f3f6ff)}
.ph-inbox__open{all:unset;box-sizing:border-box;display:flex;gap:12px;flex:1;min-width:0;cursor:pointer}
.ph-inbox__open:focus-visible{outline:3px solid var(--_accent);outline-offset:2px}
.ph-inbox__logo{width:40px;height:40px;border-radius:8px;object-fit:cover;flex:none}
.ph-inbox__image{width:72px;height:48px;border-radius:6px;object-fit:cover;flex:none}
.ph-inbox__body{display:flex;flex-direction:column;gap:2px;min-width:0}
.ph-inbox__title{font-weight:500;overflow-wrap:anywhere}
.ph-inbox__item--unread .ph-inbox__title{font-weight:700}
.ph-inbox__item--unread .ph-inbox__title::before{content:"";display:inline-block;width:8px;height:8px;margin-right:6px;border-radius:50%;background:var(--_accent);vertical-align:middle}
.ph-inbox__text{font-size:.9rem;color:var(--ph-muted,#5c6370);overflow-wrap:anywhere}
.ph-inbox__meta{font-size:.75rem;color:var(--ph-muted,#5c6370)}
.ph-inbox__pin{margin-right:6px;padding:0 6px;border-radius:4px;background:#fff3bf;color:#5c4400;font-weight:600}
.ph-inbox__actions{display:flex;flex-wrap:wrap;gap:4px;justify-content:flex-end;max-width:45%}
.ph-inbox__action{border:1px solid var(--ph-border,#dee2e6);background:var(--ph-bg,#fff);border-radius:6px;padding:2px 8px;font-size:.75rem}
.ph-inbox__action--delete{color:#c92a2a}
.ph-inbox__empty{margin:0;padding:32px 16px;text-align:center;color:var(--ph-muted,#5c6370)}
.ph-inbox__more{display:block;margin:12px auto}
.ph-inbox__more[hidden],.ph-inbox__empty[hidden]{display:none}
.ph-inbox__sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
`;
