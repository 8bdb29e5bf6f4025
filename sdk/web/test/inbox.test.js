// The inbox widget's and the badge's decisions, without a DOM.
import assert from "node:assert/strict";
import { test } from "node:test";

import { countsOf, unreadOf } from "../src/badge.js";
import { pagePath, tabsOf, visible } from "../src/inbox.js";

test("the unread-count answer becomes the counts the stream carries", () => {
  const counts = countsOf({
    unreadCount: 3,
    byCategory: [{ category: "offers", unread: 2 }, { category: null, unread: 1 }],
  });
  assert.deepEqual(counts, { unreadCount: 3, byCategory: { offers: 2, "": 1 } });
  assert.equal(unreadOf(counts, undefined), 3);
  assert.equal(unreadOf(counts, "offers"), 2);
  assert.equal(unreadOf(counts, "news"), 0);
  assert.equal(unreadOf({ unreadCount: 3, byCategory: null }, "offers"), null); // must fetch
});

test("tabs: All, then each category in order, with unread counts", () => {
  const tabs = tabsOf([{ name: "orders" }, { name: "offers", label: "Offers" }], {
    unreadCount: 4,
    byCategory: { offers: 3, "": 1 },
  });
  assert.deepEqual(tabs, [
    { name: "", label: "All", unread: 4 },
    { name: "orders", label: "orders", unread: 0 },
    { name: "offers", label: "Offers", unread: 3 },
  ]);
});

test("a page's query names the view, never more than 100", () => {
  assert.equal(pagePath({ category: "", archived: false, limit: 20 }), "/v1/inbox?limit=20");
  assert.equal(
    pagePath({ category: "a b&c", archived: true, limit: 500, cursor: "0.41" }),
    "/v1/inbox?limit=100&status=archived&category=a+b%26c&cursor=0.41",
  );
});

test("an entry past its expiresAt is hidden before the server drops it", () => {
  const now = Date.parse("2026-11-22T12:00:00Z");
  const entries = [
    { id: "3", expiresAt: null },
    { id: "2", expiresAt: "2026-11-22T11:00:00Z" },
    { id: "1", expiresAt: "2026-11-23T00:00:00Z" },
  ];
  assert.deepEqual(visible(/** @type {any} */ (entries), now).map((e) => e.id), ["3", "1"]);
});
