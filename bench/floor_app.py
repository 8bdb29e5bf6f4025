"""The floor for the sync benchmark: a bare ASGI endpoint on the same server stack
(uvicorn, FLOOR_WORKERS processes sharing the port: as many as sync runs) answering POST
with a fixed body of a given size."""

from __future__ import annotations

import os
from typing import Any

import uvicorn

BODY = b'{"pad":"' + b"x" * max(int(os.environ.get("FLOOR_BODY_BYTES", "100")) - 10, 0) + b'"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    workers = int(os.environ.get("FLOOR_WORKERS", "1"))
    uvicorn.run("floor_app:app" if workers > 1 else app, host="127.0.0.1", workers=workers,
                port=int(os.environ["FLOOR_PORT"]), log_level="warning",
                access_log=False)  # fmt: skip
