"""The HTTP server's own ceiling: an ASGI app that reads the request and answers a constant.

No token, no metrics, no parsing, no model: what is left of a request is the server's
own work (parsing HTTP, the ASGI cycle, the socket). ``http_ceiling.py`` runs it on
uvicorn beside aimass and the yardstick, so the table shows how far any app on this
server can go on this machine:

    uvicorn --loop uvloop --http httptools --no-access-log --lifespan off bare:app
"""

from __future__ import annotations

from typing import Any

ANSWER = b'{"model_name":"bare","outputs":[]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole body, answer 200 with a constant JSON."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
