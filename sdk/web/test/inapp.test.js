// The in-app presenter's decisions, without a DOM: what to show, and views counted locally.
import assert from "node:assert/strict";
import { test } from "node:test";

import { actionUrl, countDisplay, layoutOf, showable, viewsLeft } from "../src/inapp.js";

const NOW = Date.parse("2026-11-22T12:00:00Z");

/** @param {Partial<import("../src/live.js").InAppMessage>} fields */
function message(fields) {
  return {
    id: "1", inAppContentId: "c", template: "default", rules: [], content: {},
    maxViews: 3, viewsLeft: 3, expiresAt: null, ...fields,
  };
}

test("keeps the phone home's order and leaves out shown, expired and used-up messages", () => {
  const messages = [
    message({ id: "9" }),
    message({ id: "8", expiresAt: "2026-11-22T11:59:59Z" }),
    message({ id: "7", viewsLeft: 0 }),
    message({ id: "6" }),
    message({ id: "5", expiresAt: "2026-11-22T12:00:01Z" }),
    message({ id: "4" }),
  ];
  const shown = new Set(["6"]);
  assert.deepEqual(showable(messages, { now: NOW, shown, local: {} }).map((m) => m.id), ["9", "5", "4"]);
});

test("a display counts at once, before the server's viewsLeft reflects it", () => {
  const m = message({ id: "1", maxViews: 2, viewsLeft: 2 });
  let local = countDisplay({}, m, [m]);
  assert.equal(viewsLeft(m, local), 1);
  local = countDisplay(local, m, [m]); // a reload before the phone home saw the view
  assert.equal(viewsLeft(m, local), 0);
  assert.deepEqual(showable([m], { now: NOW, shown: new Set(), local }), []);
});

test("the server's lower count wins (another device viewed it), and gone messages are forgotten", () => {
  const m = message({ id: "1", maxViews: 3, viewsLeft: 3 });
  const local = countDisplay({}, m, [m]); // 2 left here
  assert.equal(viewsLeft({ ...m, viewsLeft: 1 }, local), 1);
  const other = message({ id: "2" });
  assert.deepEqual(Object.keys(countDisplay(local, other, [other])), ["2"]);
});

test("the seed's templates pick their layout", () => {
  assert.equal(layoutOf({ title: "x" }), "bottom");
  assert.equal(layoutOf({ orientation: "top" }), "top");
  assert.equal(layoutOf({ image: "https://cdn.example/a.png" }), "image");
  assert.equal(layoutOf({ image: "" }), "bottom"); // the seed's empty image
  assert.equal(layoutOf({ video: "https://cdn.example/a.mp4", image: "https://cdn.example/a.png" }), "video");
  assert.equal(layoutOf({ video: "javascript:alert(1)" }), "bottom");
});

test("only an http(s) url action opens anything", () => {
  assert.equal(actionUrl({ action: { type: "url", value: "https://example.com/x" } }), "https://example.com/x");
  assert.equal(actionUrl({ action: { type: "url", value: "" } }), null); // the seed's empty action
  assert.equal(actionUrl({ action: { type: "url", value: "javascript:alert(1)" } }), null);
  assert.equal(actionUrl({ action: { type: "deeplink", value: "myapp://x" } }), null);
  assert.equal(actionUrl({}), null);
});
