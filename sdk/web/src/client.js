// The device API client: credentials, JSON calls, and engagement events batched to
// POST /v1/events. Credentials travel in headers, never in URLs or cookies.

/** @typedef {string | (() => string | Promise<string>)} TokenSource */

/** A refused or failed call: `status` 0 means the network failed before an answer. */
export class PigeonholeError extends Error {
  /**
   * @param {string} message
   * @param {number} status
   * @param {number | null} [retryAfter] seconds, from a 429/503's Retry-After
   */
  constructor(message, status, retryAfter = null) {
    super(message);
    this.name = "PigeonholeError";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const EVENT_BATCH = 100; // POST /v1/events takes at most 100 events
const FLUSH_DELAY_MS = 50;
const MAX_EVENT_BACKOFF_MS = 30_000;

export class Client {
  /**
   * @param {{appKey: string, token: TokenSource, baseUrl: string}} options
   */
  constructor({ appKey, token, baseUrl }) {
    this.appKey = appKey;
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.tokenSource = token;
    /** @type {Promise<string> | null} */
    this.token = null;
    /** @type {{eventId: string, messageId: string, type: string, at: string}[]} */
    this.queue = [];
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.flushTimer = null;
    this.backoffMs = 0;
    this.closed = false;
  }

  /**
   * The contact the token names (its `sub`), read without verifying: only to keep this
   * contact's state apart from another's in the browser. The server verifies every call.
   * @returns {Promise<string>}
   */
  async contactId() {
    const sub = jwtClaims(await this.currentToken()).sub;
    if (typeof sub !== "string" || sub === "") {
      throw new PigeonholeError("Pigeonhole: the token has no `sub` (the contact id)", 401);
    }
    return sub;
  }

  /**
   * Call the device API; the parsed JSON answer (null for an empty one).
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {{keepalive?: boolean}} [init]
   * @returns {Promise<any>}
   */
  async request(method, path, body, init = {}) {
    let response = await this.fetch(method, path, body, init, await this.currentToken());
    if (response.status === 401 && typeof this.tokenSource === "function") {
      this.token = null; // expired or rotated: ask the page's backend for a new one, once
      response = await this.fetch(method, path, body, init, await this.currentToken());
    }
    const text = await response.text();
    const parsed = text ? safeJson(text) : null;
    if (!response.ok) {
      const retryAfter = Number(response.headers.get("Retry-After")) || null;
      throw new PigeonholeError(
        `Pigeonhole: ${method} ${path} answered ${response.status}: ${problem(parsed, text)}`,
        response.status,
        retryAfter,
      );
    }
    return parsed;
  }

  /**
   * Queue an engagement event; sent in batches, retried until the API takes it (the
   * eventId makes a retry harmless). Resolves once queued.
   * @param {string} messageId
   * @param {"view" | "click" | "dismiss" | "read" | "delete"} type
   * @returns {Promise<void>}
   */
  async report(messageId, type) {
    if (this.closed) return;
    this.queue.push({ eventId: newEventId(), messageId, type, at: new Date().toISOString() });
    this.scheduleFlush(FLUSH_DELAY_MS);
  }

  /** Send what is queued now (also when the page is being hidden or closed). */
  async flush() {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    while (this.queue.length) {
      const batch = this.queue.slice(0, EVENT_BATCH);
      try {
        await this.request("POST", "/v1/events", { events: batch }, { keepalive: true });
      } catch (error) {
        if (!retryable(error)) {
          console.error("Pigeonhole: events refused, dropped", error);
        } else {
          this.backoffMs = Math.min(Math.max(this.backoffMs * 2, 1000), MAX_EVENT_BACKOFF_MS);
          const after = error instanceof PigeonholeError && error.retryAfter;
          this.scheduleFlush(after ? after * 1000 : this.backoffMs);
          return;
        }
      }
      this.queue.splice(0, batch.length);
      this.backoffMs = 0;
    }
  }

  /** Stop: flush what is queued (best effort) and send nothing more. */
  close() {
    void this.flush();
    this.closed = true;
  }

  /** @param {number} delayMs */
  scheduleFlush(delayMs) {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.flush();
    }, delayMs);
  }

  /** @returns {Promise<string>} */
  currentToken() {
    if (!this.token) {
      const source = this.tokenSource;
      this.token = Promise.resolve(typeof source === "function" ? source() : source).then(
        (token) => {
          if (typeof token !== "string" || token === "") {
            throw new PigeonholeError("Pigeonhole: `token` gave no token", 401);
          }
          return token;
        },
      );
      this.token.catch(() => {
        this.token = null; // try the source again next time
      });
    }
    return this.token;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} body
   * @param {{keepalive?: boolean}} init
   * @param {string} token
   * @returns {Promise<Response>}
   */
  async fetch(method, path, body, init, token) {
    /** @type {Record<string, string>} */
    const headers = { "X-App-Key": this.appKey, Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        keepalive: init.keepalive,
        credentials: "omit",
      });
    } catch (error) {
      throw new PigeonholeError(`Pigeonhole: ${method} ${path} failed: ${error}`, 0);
    }
  }
}

/**
 * Worth trying again later: the network failed, the server is busy or a dependency down.
 * @param {unknown} error
 */
export function retryable(error) {
  if (!(error instanceof PigeonholeError)) return false;
  return error.status === 0 || error.status === 429 || error.status >= 500;
}

/**
 * The claims of a JWT, without verifying it ({} when it is not one).
 * @param {string} token
 * @returns {Record<string, unknown>}
 */
export function jwtClaims(token) {
  const part = token.split(".")[1];
  if (!part) return {};
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}

/** @returns {string} */
function newEventId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // pages served over plain http
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} text */
function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * What an error answer says, shortly: the envelope's `detail` or the start of the text.
 * @param {any} parsed
 * @param {string} text
 */
function problem(parsed, text) {
  const detail = parsed && typeof parsed === "object" ? parsed.detail : null;
  if (typeof detail === "string") return detail;
  if (detail) return JSON.stringify(detail).slice(0, 300);
  return text.slice(0, 300);
}
