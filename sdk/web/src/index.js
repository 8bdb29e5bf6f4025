// Pigeonhole's web SDK: in-app messages and a live App Inbox for web pages.
//
//   import Pigeonhole from "https://sync.example.com/sdk/pigeonhole.mjs";
//   Pigeonhole.init({ appKey, token: () => fetch("/pigeonhole-token").then((r) => r.text()) });
//   Pigeonhole.showInAppMessages();
//   Pigeonhole.mountInbox(document.querySelector("#inbox"));
//   Pigeonhole.mountBadge(document.querySelector("#badge"));
//
// docs/web-sdk.md is the guide. Dependency-free; message data is rendered as text only.

import { Badge } from "./badge.js";
import { Client, PigeonholeError } from "./client.js";
import { Emitter } from "./emitter.js";
import { InAppPresenter } from "./inapp.js";
import { InboxWidget } from "./inbox.js";
import { Live } from "./live.js";
import { Store } from "./store.js";

/**
 * @typedef {import("./client.js").TokenSource} TokenSource
 * @typedef {import("./live.js").Context} Context
 * @typedef {{appKey: string, token: TokenSource, baseUrl?: string, stream?: boolean}} InitOptions
 * @typedef {{destroy(): void}} Component
 * @typedef {{destroy(): void, ready: Promise<void>}} Handle
 */

export const VERSION = "0.1.0";

/** Where the SDK was loaded from (the module's URL, or the classic script's): the
 * default `baseUrl`, since sync serves the SDK. */
const LOADED_FROM = (() => {
  const script = /** @type {HTMLScriptElement | null} */ (document.currentScript);
  for (const candidate of [import.meta.url, script?.src]) {
    try {
      return new URL(String(candidate)).origin;
    } catch {
      // not this one
    }
  }
  return "";
})();

/** One initialised SDK: a contact of an app on this page. */
class Instance {
  /** @param {InitOptions} options */
  constructor(options) {
    if (!options || typeof options.appKey !== "string" || options.appKey === "") {
      throw new TypeError("Pigeonhole.init: `appKey` (a string) is required");
    }
    if (typeof options.token !== "string" && typeof options.token !== "function") {
      throw new TypeError("Pigeonhole.init: `token` (a string or a function) is required");
    }
    const baseUrl = options.baseUrl ?? LOADED_FROM;
    if (!/^https?:\/\//.test(baseUrl)) {
      throw new TypeError("Pigeonhole.init: `baseUrl` (your sync URL, http(s)) is required");
    }
    this.emitter = new Emitter();
    this.client = new Client({ appKey: options.appKey, token: options.token, baseUrl });
    /** @type {Set<Component>} */
    this.components = new Set();
    this.destroyed = false;
    this.onHide = () => {
      if (document.visibilityState === "hidden") void this.client.flush();
    };
    document.addEventListener("visibilitychange", this.onHide);
    /** @type {Promise<Context>} */
    this.context = this.client.contactId().then((contactId) => {
      const store = new Store(options.appKey, contactId);
      const live = new Live(this.client, store, this.emitter, { stream: options.stream });
      if (!this.destroyed) live.start();
      return { client: this.client, store, live, emitter: this.emitter };
    });
    this.context.catch((error) => this.emitter.emit("error", { error }));
  }

  /**
   * Build a component once the context is ready; the handle destroys it (or stops it from
   * being built).
   * @param {(ctx: Context) => Component} build
   * @returns {Handle}
   */
  mount(build) {
    /** @type {Component | null} */
    let component = null;
    let cancelled = false;
    const ready = this.context.then((ctx) => {
      if (cancelled || this.destroyed) return;
      component = build(ctx);
      this.components.add(component);
    });
    return {
      ready,
      destroy: () => {
        cancelled = true;
        if (component) {
          this.components.delete(component);
          component.destroy();
        }
      },
    };
  }

  destroy() {
    this.destroyed = true;
    document.removeEventListener("visibilitychange", this.onHide);
    for (const component of this.components) component.destroy();
    this.components.clear();
    this.context.then((ctx) => ctx.live.stop()).catch(() => {});
    this.client.close();
    this.emitter.clear();
  }
}

/** @type {Instance | null} */
let current = null;

/** @returns {Instance} */
function instance() {
  if (!current) throw new Error("Pigeonhole: call Pigeonhole.init({appKey, token}) first");
  return current;
}

/**
 * @param {Element} element
 * @param {string} method
 * @returns {HTMLElement}
 */
function container(element, method) {
  if (!(element instanceof HTMLElement)) {
    throw new TypeError(`Pigeonhole.${method}: give the element to render into`);
  }
  return element;
}

const Pigeonhole = {
  VERSION,
  PigeonholeError,

  /**
   * Start the SDK for a contact of an app: phones home and opens the live stream.
   * Calling it again (another user signed in) ends the previous one first.
   * @param {InitOptions} options
   */
  init(options) {
    current?.destroy();
    current = null;
    current = new Instance(options);
    return Pigeonhole;
  },

  /**
   * Show the pending in-app messages, one at a time, newest first, now and whenever
   * new ones arrive. Resolves once the SDK is ready (the first phone home is under way).
   * @param {Record<string, any>} [options] see InAppPresenter
   * @returns {Handle}
   */
  showInAppMessages(options = {}) {
    return instance().mount((ctx) => new InAppPresenter(ctx, options));
  },

  /**
   * Render the App Inbox into `element`.
   * @param {Element} element
   * @param {Record<string, any>} [options] see InboxWidget
   * @returns {Handle}
   */
  mountInbox(element, options = {}) {
    const target = container(element, "mountInbox");
    if (!current && options.appKey) Pigeonhole.init(/** @type {InitOptions} */ (options));
    return instance().mount((ctx) => new InboxWidget(ctx, target, options));
  },

  /**
   * Render the unread badge into `element`.
   * @param {Element} element
   * @param {Record<string, any>} [options] see Badge
   * @returns {Handle}
   */
  mountBadge(element, options = {}) {
    const target = container(element, "mountBadge");
    return instance().mount((ctx) => new Badge(ctx, target, options));
  },

  /**
   * Listen to the SDK's events: "sync", "inbox", "connection", "inapp:view",
   * "inapp:click", "inapp:dismiss", "inbox:action", "error".
   * @param {string} type
   * @param {(detail: any) => void} fn
   * @returns {() => void} stops listening
   */
  on(type, fn) {
    return instance().emitter.on(type, fn);
  },

  /**
   * Phone home now (what a page does after it knows something changed); resolves with
   * the pending in-app messages and the unread count.
   * @returns {Promise<import("./live.js").SyncState>}
   */
  async sync() {
    const ctx = await instance().context;
    return ctx.live.sync();
  },

  /**
   * The first script's call (/sdk/inbox.js), kept for its pages: `init` with these
   * options unless the SDK is running, then phone home.
   * @deprecated use init() and sync()
   * @param {InitOptions} options
   */
  phoneHome(options) {
    if (!current) Pigeonhole.init(options);
    return Pigeonhole.sync();
  },

  /** Remove everything the SDK put on the page, close the stream, stop the timers. */
  destroy() {
    current?.destroy();
    current = null;
  },
};

export default Pigeonhole;
export { Pigeonhole, PigeonholeError };
