// Unit tests of the SDK's core (no DOM): the client, the store, the phone home's held set,
// the stream's counts. Fakes stand in for fetch and localStorage.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, PigeonholeError, jwtClaims, retryable } from "../src/client.js";
import { safeUrl } from "../src/dom.js";
import { Emitter } from "../src/emitter.js";
import { Live, streamCounts } from "../src/live.js";
import { Store } from "../src/store.js";

/** @param {Record<string, unknown>} claims */
function token(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256" })}.${part(claims)}.signature`;
}

class FakeStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

/** A fetch that answers from a list and records the calls. */
function fakeFetch(answers) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined });
    const next = answers.shift();
    if (next instanceof Error) throw next;
    const [status, body, headers = {}] = next;
    return new Response(body === null ? null : JSON.stringify(body), { status, headers });
  };
  return { fn, calls };
}

test("safeUrl keeps absolute http(s) URLs only", () => {
  assert.equal(safeUrl("https://example.com/a?b=1"), "https://example.com/a?b=1");
  assert.equal(safeUrl(" http://example.com "), "http://example.com/");
  for (const bad of ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "/relative", "", null, 42, "vbscript:x"]) {
    assert.equal(safeUrl(bad), null, String(bad));
  }
});

test("the store keeps each app and contact apart", () => {
  const storage = new FakeStorage();
  const alice = new Store("app1", "alice", storage);
  const bob = new Store("app1", "bob", storage);
  const otherApp = new Store("app2", "alice", storage);
  alice.set("sync", { cursor: "web.1" });
  assert.deepEqual(alice.get("sync"), { cursor: "web.1" });
  assert.equal(bob.get("sync"), undefined);
  assert.equal(otherApp.get("sync"), undefined);
  // a contact id with the separator in it cannot reach another contact's keys
  assert.equal(new Store("app1", "alice:x", storage).get("sync"), undefined);
});

test("the store falls back to memory when storage is blocked", () => {
  const blocked = {
    getItem() { throw new Error("SecurityError"); },
    setItem() { throw new Error("SecurityError"); },
    removeItem() { throw new Error("SecurityError"); },
  };
  const store = new Store("app", "c", blocked);
  store.set("x", [1, 2]);
  assert.deepEqual(store.get("x"), [1, 2]);
});

test("jwtClaims reads the contact without verifying, and never throws", () => {
  assert.equal(jwtClaims(token({ sub: "ç-contact" })).sub, "ç-contact");
  assert.deepEqual(jwtClaims("not a token"), {});
  assert.deepEqual(jwtClaims("a.%%%.c"), {});
});

test("a 401 asks the token function again, once", async (t) => {
  const { fn, calls } = fakeFetch([[401, { detail: "expired" }], [200, { ok: true }]]);
  t.mock.method(globalThis, "fetch", fn);
  let asked = 0;
  const client = new Client({
    appKey: "k",
    token: async () => token({ sub: "c", n: ++asked }),
    baseUrl: "https://sync.example/",
  });
  assert.deepEqual(await client.request("GET", "/v1/inbox"), { ok: true });
  assert.equal(asked, 2);
  assert.equal(calls[0].url, "https://sync.example/v1/inbox");
  assert.equal(calls[0].init.headers["X-App-Key"], "k");
  assert.notEqual(calls[0].init.headers.Authorization, calls[1].init.headers.Authorization);
  assert.equal(calls[0].init.credentials, "omit");
});

test("an error answer names the status, the detail and Retry-After", async (t) => {
  const { fn } = fakeFetch([[503, { detail: "PostgreSQL is unavailable" }, { "Retry-After": "7" }]]);
  t.mock.method(globalThis, "fetch", fn);
  const client = new Client({ appKey: "k", token: token({ sub: "c" }), baseUrl: "https://s" });
  await assert.rejects(client.request("POST", "/v1/sync", {}), (error) => {
    assert.ok(error instanceof PigeonholeError);
    assert.equal(error.status, 503);
    assert.equal(error.retryAfter, 7);
    assert.match(error.message, /PostgreSQL is unavailable/);
    assert.ok(retryable(error));
    return true;
  });
});

test("events are batched, and a failed batch is sent again with the same eventIds", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { fn, calls } = fakeFetch([new TypeError("network down"), [200, { accepted: 2 }]]);
  t.mock.method(globalThis, "fetch", fn);
  const client = new Client({ appKey: "k", token: token({ sub: "c" }), baseUrl: "https://s" });
  await client.report("1", "view");
  await client.report("1", "click");
  t.mock.timers.tick(50);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calls.length, 1);
  t.mock.timers.tick(1000); // backoff after a network failure
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[1].body, calls[0].body);
  assert.deepEqual(calls[1].body.events.map((e) => e.type), ["view", "click"]);
  assert.equal(client.queue.length, 0);
});

test("a phone home answering 'nothing new' gives the held messages", async () => {
  const answers = [
    { changed: true, messages: [{ id: "2" }, { id: "1" }], inboxUnreadCount: 3, cursor: "web.5", nextSyncAfterSeconds: 60 },
    { changed: false, cursor: "web.5", nextSyncAfterSeconds: 60 },
  ];
  const sent = [];
  const client = { request: async (_m, _p, body) => (sent.push(body), answers.shift()) };
  const emitter = new Emitter();
  const seen = [];
  emitter.on("sync", (state) => seen.push(state));
  const store = new Store("k", "c", new FakeStorage());
  const live = new Live(/** @type {any} */ (client), store, emitter, { stream: false });
  live.stopped = false;
  await live.phoneHome();
  await live.phoneHome();
  clearTimeout(live.pollTimer);
  assert.deepEqual(sent, [{ platform: "web" }, { platform: "web", cursor: "web.5" }]);
  assert.deepEqual(seen[1], { messages: [{ id: "2" }, { id: "1" }], inboxUnreadCount: 3 });
  live.forget("2");
  assert.deepEqual(store.get("sync").messages, [{ id: "1" }]);
});

test("stream events' counts, by category", () => {
  const data = JSON.stringify({
    version: "9",
    inboxUnreadCount: 3,
    unreadByCategory: [{ category: "offers", unread: 2 }, { category: null, unread: 1 }],
  });
  assert.deepEqual(streamCounts(data), { unreadCount: 3, byCategory: { offers: 2, "": 1 } });
  assert.deepEqual(streamCounts("not json"), { unreadCount: null, byCategory: null });
});
