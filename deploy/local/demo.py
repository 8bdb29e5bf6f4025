"""`make demo`: the web SDK on a page, against the local stack (`make up` first).

Creates (or reuses, from .stack/demo/state.json) an admin token, a demo app with two
subscription categories and a demo contact; sends it a bottom banner and three App Inbox
messages when it has none pending; signs a 12-hour device token; writes a page loading the
SDK from sync and serves it on http://127.0.0.1:8090 until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("PIGEONHOLE_STATE_DIR") or REPO / ".stack") / "demo"
PUBLISHER = "http://127.0.0.1:8080"
SYNC = "http://127.0.0.1:8081"
PORT = int(os.environ.get("PIGEONHOLE_DEMO_PORT", "8090"))
CONTACT = "demo-ada"
CATEGORIES = [
    {"name": "offers", "description": "Sales and discounts"},
    {"name": "news", "description": "What is new in the shop"},
]
BANNER = {
    "rules": [],
    "template": "default",
    "maxViews": 3,
    "content": {
        "title": "Hello %%first_name%%",
        "text": "Spring sale: 20% off everything until Sunday.",
        "color": "#0b7a75",
        "icon": "note",
        "mainImage": "",
        "action": {"type": "url", "value": "https://example.com/sale"},
    },
}
INBOX = [
    ("Your order has shipped", "It arrives on Thursday, %%first_name%%.", "news"),
    ("20% off shoes", "This weekend only, on every pair.", "offers"),
    ("New: gift cards", "Send one in a minute, to anyone.", "news"),
]
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Pigeonhole web SDK demo</title>
  <link rel="icon" href="data:,">
  <style>
    body {{ font-family: system-ui, sans-serif; margin: 0; padding: 16px; background: #f4f5f7; }}
    header {{ display: flex; align-items: center; gap: 12px; }}
    #inbox {{ max-width: 520px; }}
  </style>
</head>
<body>
  <header><h1>Demo shop</h1><span id="badge"></span></header>
  <p>Signed in as <b>{contact}</b> of app <code>{app_key}</code>.</p>
  <div id="inbox"></div>
  <script type="module">
    import Pigeonhole from "{sync}/sdk/pigeonhole.mjs";
    // a real page gets the token from its backend; the demo signed one for 12 hours
    Pigeonhole.init({{ appKey: {app_key_js}, token: {token_js}, baseUrl: "{sync}" }});
    Pigeonhole.showInAppMessages();
    Pigeonhole.mountInbox(document.querySelector("#inbox"));
    Pigeonhole.mountBadge(document.querySelector("#badge"));
    window.Pigeonhole = Pigeonhole;
  </script>
</body>
</html>
"""


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def check(response: httpx.Response, *ok: int) -> Any:
    if response.status_code not in ok:
        sys.exit(
            f"demo: {response.request.method} {response.request.url} -> "
            f"{response.status_code} {response.text}"
        )
    return response.json().get("data") if response.content else None


def admin_token(state: dict[str, Any]) -> str:
    token = state.get("token")
    if token:
        known = httpx.get(f"{PUBLISHER}/apps/{state.get('appKey', '-')}", headers=bearer(token))
        if known.status_code != 401:
            return str(token)
    pigeonhole = Path(sys.executable).parent / "pigeonhole"
    done = subprocess.run(
        [str(pigeonhole), "tokens", "create", "--name", "demo", "--scope", "admin"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def device_token(secret: str, hours: int = 12) -> str:
    return jwt.encode({"sub": CONTACT, "exp": int(time.time()) + hours * 3600}, secret, "HS256")


def send(api: httpx.Client, app_key: str, content: dict[str, Any]) -> None:
    body = {
        "channelQualifiers": [app_key],
        "content": content,
        "contacts": [{"contactId": CONTACT}],
    }
    check(api.post("/channels/push/sends", json=body), 202)


def seed(api: httpx.Client, state: dict[str, Any]) -> None:
    """App, categories and contact; then whatever the contact is missing."""
    if not state.get("appKey") or api.get(f"/apps/{state['appKey']}").status_code != 200:
        app = check(api.post("/apps", json={"name": "demo"}), 201)
        state.update(appKey=app["appKey"], appSecret=app["appSecret"])
        state.pop("contents", None)
    app_key = state["appKey"]
    check(api.put(f"/apps/{app_key}/categories", json={"categories": CATEGORIES}), 200)
    attributes = {"first_name": "Ada"}
    check(api.put(f"/contacts/{CONTACT}", json={"attributes": attributes}), 200, 201)
    contents = state.setdefault("contents", {})
    if "banner" not in contents:
        body = {"payload": {"web": BANNER}, "personalizationDefaults": {"first_name": "there"}}
        contents["banner"] = check(api.post("/channels/push/inappcontent", json=body), 201)["id"]
    if "inbox" not in contents:
        contents["inbox"] = [
            check(
                api.post(
                    "/appinbox/messages",
                    json={
                        "name": f"demo-{n}",
                        "title": title,
                        "text": text,
                        "category": category,
                        "url": "https://example.com/account",
                        "personalizationDefaults": {"first_name": "there"},
                    },
                ),
                201,
            )["id"]
            for n, (title, text, category) in enumerate(INBOX)
        ]

    device = httpx.Client(
        base_url=SYNC,
        timeout=30,
        headers={"X-App-Key": app_key, **bearer(device_token(state["appSecret"]))},
    )
    with device:
        pending = device.post("/v1/sync", json={"platform": "web"}).raise_for_status().json()
        inbox = device.get("/v1/inbox", params={"limit": 1}).raise_for_status().json()
    if not pending.get("messages"):
        say("sending the bottom banner")
        send(api, app_key, {"inAppMessage": {"inAppContentId": contents["banner"], "maxViews": 3}})
    if not inbox.get("messages"):
        say("sending three App Inbox messages (two categories)")
        for content_id in contents["inbox"]:
            send(api, app_key, {"inboxMessage": {"inboxContentId": content_id}})


class _Page(BaseHTTPRequestHandler):
    """Serves the page at / and nothing else (the state file holds the admin token)."""

    page = b""

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/", "/index.html"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state_file = STATE_DIR / "state.json"
    state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {}
    try:
        state["token"] = admin_token(state)
        with httpx.Client(base_url=PUBLISHER, timeout=30, headers=bearer(state["token"])) as api:
            seed(api, state)
    except httpx.ConnectError as error:
        sys.exit(f"demo: the local stack is not answering ({error}): run `make up` first")
    finally:  # what was made is reused next time; it holds the admin token and app secret
        state_file.touch(mode=0o600)
        state_file.write_text(json.dumps(state, indent=2))

    app_key = state["appKey"]
    page = PAGE.format(
        contact=CONTACT,
        app_key=app_key,
        sync=SYNC,
        app_key_js=json.dumps(app_key),
        token_js=json.dumps(device_token(state["appSecret"])),
    )
    _Page.page = page.encode()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", PORT), _Page)
    except OSError as error:
        sys.exit(
            f"demo: cannot serve on 127.0.0.1:{PORT} ({error}); PIGEONHOLE_DEMO_PORT=… to move"
        )
    another = json.dumps(
        {
            "channelQualifiers": [app_key],
            "contacts": [{"contactId": CONTACT}],
            "content": {"inboxMessage": {"inboxContentId": state["contents"]["inbox"][1]}},
        }
    )
    say(f"open http://127.0.0.1:{PORT}/  (Ctrl-C stops the page; the stack keeps running)")
    say("send another App Inbox message live:")
    print(
        f"  curl -s -X POST {PUBLISHER}/channels/push/sends -H 'Authorization: Bearer "
        f"{state['token']}' -H 'Content-Type: application/json' -d '{another}'",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
