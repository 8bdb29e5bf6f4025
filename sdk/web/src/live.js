// The phone home, the live stream and the polling fallback.
//
// On start the device phones home (POST /v1/sync) and opens GET /v1/stream with a
// one-time ticket (EventSource cannot send headers, and a long-lived token never goes in
// a URL). Each stream event says the inbox changed: the SDK emits "inbox" with the counts
// it carries and phones home for in-app messages. When the stream cannot be opened (or
// drops), the SDK polls the phone home every `nextSyncAfterSeconds` and keeps trying the
// stream with a growing delay; when the page becomes visible again it phones home at once.

import { PigeonholeError, retryable } from "./client.js";

/**
 * @typedef {import("./client.js").Client} Client
 * @typedef {import("./store.js").Store} Store
 * @typedef {import("./emitter.js").Emitter} Emitter
 * @typedef {{id: string, inAppContentId: string, template: string | null, rules: string[],
 *   content: Record<string, any>, maxViews: number, viewsLeft: number,
 *   expiresAt: string | null}} InAppMessage
 * @typedef {{messages: InAppMessage[], inboxUnreadCount: number | null}} SyncState
 * @typedef {{unreadCount: number | null, byCategory: Record<string, number> | null}} InboxCounts
 * @typedef {{client: Client, store: Store, live: Live, emitter: Emitter}} Context
 */

const DEFAULT_POLL_SECONDS = 60;
const MIN_POLL_SECONDS = 5;
const STREAM_RETRY_MS = [1_000, 3_000, 10_000, 30_000, 60_000];

export class Live {
  /**
   * @param {Client} client
   * @param {Store} store
   * @param {Emitter} emitter
   * @param {{stream?: boolean}} [options] `stream: false` polls only
   */
  constructor(client, store, emitter, options = {}) {
    this.client = client;
    this.store = store;
    this.emitter = emitter;
    this.useStream = options.stream !== false && typeof EventSource === "function";
    /** @type {"live" | "polling"} */
    this.state = "polling";
    this.pollSeconds = DEFAULT_POLL_SECONDS;
    /** @type {EventSource | null} */
    this.source = null;
    this.streamFailures = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.pollTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.streamTimer = null;
    /** @type {Promise<SyncState> | null} */
    this.running = null;
    this.again = false;
    this.stopped = false;
    /** @type {InboxCounts} */
    this.counts = { unreadCount: null, byCategory: null };
    this.onVisible = () => {
      if (document.visibilityState === "visible") void this.sync().catch(() => {});
    };
  }

  /** Phone home now, open the stream, and keep both going until stop(). */
  start() {
    document.addEventListener("visibilitychange", this.onVisible);
    void this.sync().catch(() => {});
    if (this.useStream) this.openStream();
    else this.schedulePoll();
  }

  stop() {
    this.stopped = true;
    document.removeEventListener("visibilitychange", this.onVisible);
    this.source?.close();
    this.source = null;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.streamTimer) clearTimeout(this.streamTimer);
  }

  /**
   * Phone home now. Calls made while one runs share one more phone home after it.
   * Emits "sync" with the complete pending set.
   * @returns {Promise<SyncState>}
   */
  sync() {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = this.phoneHome().finally(() => {
      this.running = null;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.sync().catch(() => {});
      }
    });
    this.running = run;
    return run;
  }

  /** @returns {Promise<SyncState>} */
  async phoneHome() {
    /** @type {{cursor?: string, messages?: InAppMessage[], unread?: number | null}} */
    const held = this.store.get("sync") ?? {};
    let answer;
    try {
      answer = await this.client.request("POST", "/v1/sync", {
        platform: "web",
        ...(held.cursor ? { cursor: held.cursor } : {}),
      });
    } catch (error) {
      this.failed(error);
      throw error;
    }
    this.pollSeconds = Math.max(MIN_POLL_SECONDS, Number(answer.nextSyncAfterSeconds) || 0);
    /** @type {SyncState} */
    const state = answer.changed
      ? { messages: answer.messages ?? [], inboxUnreadCount: answer.inboxUnreadCount ?? null }
      : { messages: held.messages ?? [], inboxUnreadCount: held.unread ?? null };
    if (this.stopped) return state;
    this.store.set("sync", {
      cursor: answer.cursor,
      messages: state.messages,
      unread: state.inboxUnreadCount,
    });
    this.emitter.emit("sync", state);
    if (answer.changed && this.state === "polling") {
      this.changed({ unreadCount: state.inboxUnreadCount, byCategory: null });
    }
    if (this.state === "polling") this.schedulePoll();
    return state;
  }

  /**
   * Drop a message from the held set at once (clicked, or known gone), so a reload before
   * the next phone home does not show it.
   * @param {string} id
   */
  forget(id) {
    const held = this.store.get("sync");
    if (!held?.messages) return;
    held.messages = held.messages.filter((/** @type {InAppMessage} */ m) => m.id !== id);
    this.store.set("sync", held);
  }

  /** @param {InboxCounts} counts */
  changed(counts) {
    this.counts = counts;
    this.emitter.emit("inbox", counts);
  }

  /** @param {unknown} error */
  failed(error) {
    this.emitter.emit("error", { error });
    if (retryable(error) && this.state === "polling") {
      const after = error instanceof PigeonholeError ? error.retryAfter : null;
      this.schedulePoll(after ?? undefined);
    }
  }

  /** @param {number} [seconds] */
  schedulePoll(seconds = this.pollSeconds) {
    if (this.stopped) return;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (this.state === "polling") void this.sync().catch(() => {});
    }, seconds * 1000);
  }

  async openStream() {
    if (this.stopped) return;
    let ticket;
    try {
      ({ ticket } = await this.client.request("POST", "/v1/stream/ticket"));
    } catch (error) {
      this.streamFailed(error);
      return;
    }
    if (this.stopped) return;
    const url = `${this.client.baseUrl}/v1/stream?ticket=${encodeURIComponent(ticket)}`;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("open", () => {
      this.streamFailures = 0;
      this.setState("live");
    });
    source.addEventListener("changed", (event) => {
      this.changed(streamCounts(/** @type {MessageEvent} */ (event).data));
      void this.sync().catch(() => {});
    });
    source.addEventListener("error", () => {
      // A ticket opens one stream once, so EventSource's own reconnect cannot succeed:
      // close it, poll meanwhile, and open a new stream with a new ticket.
      source.close();
      if (this.source === source) this.source = null;
      this.streamFailed(null);
    });
  }

  /** @param {unknown} error */
  streamFailed(error) {
    if (this.stopped) return;
    if (error) this.emitter.emit("error", { error });
    this.setState("polling");
    const delay = STREAM_RETRY_MS[Math.min(this.streamFailures, STREAM_RETRY_MS.length - 1)];
    this.streamFailures += 1;
    if (this.streamTimer) clearTimeout(this.streamTimer);
    this.streamTimer = setTimeout(() => {
      this.streamTimer = null;
      void this.openStream();
    }, delay);
  }

  /** @param {"live" | "polling"} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    if (state === "polling") this.schedulePoll();
    else if (this.pollTimer) {
      clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
    this.emitter.emit("connection", { state });
  }
}

/**
 * The counts of a stream event's data (`{version, inboxUnreadCount, unreadByCategory:
 * [{category, unread}]}`), with categories as an object ("" for messages without one).
 * @param {string} data
 * @returns {InboxCounts}
 */
export function streamCounts(data) {
  try {
    const parsed = JSON.parse(data);
    /** @type {Record<string, number> | null} */
    let byCategory = null;
    if (Array.isArray(parsed.unreadByCategory)) {
      byCategory = {};
      for (const row of parsed.unreadByCategory) byCategory[row.category ?? ""] = row.unread;
    }
    const unread = parsed.inboxUnreadCount;
    return { unreadCount: typeof unread === "number" ? unread : null, byCategory };
  } catch {
    return { unreadCount: null, byCategory: null };
  }
}
