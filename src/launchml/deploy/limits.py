"""What the REST server refuses, and how: its limits, its one error shape, its guards.

Every route of the server, whichever file adds it, gets these by ``install(app,
limits)`` and uvicorn's settings by ``uvicorn_config``:

- ``ServerLimits``: the limits, with defaults that keep a 2-core, 4 GB machine
  answering under hostile input (a body or image bomb, thousands of stalled
  connections, a flood of requests). ``launchml serve`` exposes each as a flag.
- ``ApiError``: raise it anywhere in a route for a 4xx/5xx answer; every error the
  server sends is JSON ``{"error": "<what happened and the fix>"}``, also
  Starlette's (404, 405, multipart limits), validation errors and a 500.
- ``parse_json``: a JSON body, refusing NaN, Infinity and 1e400 (naming the field)
  and a nesting too deep to parse (a 422, not a RecursionError).
- ``read_form`` / ``read_body``: a multipart form or raw body within the limits.
- ``decode_limits``: the image pixel limit around a predictor call (checked from the
  header before decoding; JPEGs are decoded reduced when that fits).
- a guard (ASGI middleware) for the body size and the number of requests that
  compute at once (beyond it, a short queue, then 503); and an HTTP protocol
  (uvicorn's h11 one) that closes idle and too-slow connections and evicts the
  oldest idle one when there are too many.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from launchml.errors import ConfigError, missing_dependency

if TYPE_CHECKING:  # the [serve] extra, imported where used: the CLI reads the defaults
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

MB = 1 << 20
MIN_MAX_PIXELS = 4096 * 4096  # a 12-megapixel phone photo fits
PIXELS_PER_INPUT = 256  # else: 256 x the model's input size (e.g. 224x224 -> 12.8 MP)


@dataclass(frozen=True)
class ServerLimits:
    """The server's limits (``launchml serve --max-body-mb ...``). Each bounds memory or
    time an anonymous client can take; the defaults keep a 2-core, 4 GB machine serving
    (tests/security, bench/serve_audit.py)."""

    max_body_mb: float = 32.0  # a request body (JSON, CSV or multipart), in MiB: 413
    max_batch: int = 64  # images in one request: 413
    max_records: int = 10_000  # table records (or CSV rows) in one request: 413
    max_pixels: int | None = None  # one image's pixels (None: from the model, below): 413
    max_concurrent: int = 4  # requests computing at once (POST routes)
    max_queue: int = 64  # requests waiting for one of those; beyond: 503 with Retry-After
    request_timeout_s: float = 30.0  # a request must arrive (head and body) within this
    idle_timeout_s: float = 5.0  # a connection that sends nothing is closed after this
    max_connections: int = 1000  # beyond: the oldest idle connection is closed (or 503)
    max_header_kb: int = 16  # the request line and headers: 400
    # the one folder image columns of records may name files in (--image-root); None: a
    # record's image is base64 data only, the server opens no path a client names
    image_root: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "image_root":
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"server limit {f.name} must be a positive number; got "
                                  f"{value!r}. Fix: e.g. --{f.name.replace('_', '-')} "
                                  f"{f.default}")

    @property
    def max_body(self) -> int:
        return int(self.max_body_mb * MB)

    def pixels_for(self, state: dict[str, Any] | None) -> int:
        """The pixel limit for an image column with fitted ``state``: ``max_pixels`` when
        set, else 256 times the model's input size, at least 4096 x 4096."""
        if self.max_pixels is not None:
            return int(self.max_pixels)
        h, w = (state or {}).get("target_size") or (1, 1)
        return max(MIN_MAX_PIXELS, PIXELS_PER_INPUT * int(h) * int(w))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ApiError(Exception):
    """An answer other than 200: ``{"error": message}`` with ``status`` (and headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def error_response(status: int, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    try:
        from fastapi.responses import JSONResponse
    except ImportError as e:
        raise missing_dependency(e.name or "fastapi", "serve", "the REST server") from e

    return JSONResponse({"error": message}, status_code=status, headers=headers)


# ---------------------------------------------------------------- request bodies
class _NonFinite(str):
    """A NaN, Infinity or out-of-range number met while parsing (reported with its path)."""


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _first_non_finite(obj: Any) -> tuple[str, str] | None:
    """(path, text) of the first non-finite number in ``obj`` (iterative: any depth)."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _NonFinite):
            return path or "<body>", str(value)
        if isinstance(value, dict):
            stack += [(f"{path}.{k}" if path else str(k), v)
                      for k, v in reversed(list(value.items()))]
        elif isinstance(value, list):
            stack += [(f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value)))]
    return None


def parse_json(raw: bytes) -> Any:
    """The JSON body, or ApiError 422: not JSON, nested too deep, or holding NaN,
    Infinity or a number out of float range (named by its path, e.g. records[3].age)."""
    try:
        body = json.loads(raw, parse_constant=_NonFinite, parse_float=_float)
    except RecursionError:
        raise ApiError(422, "the JSON body is nested too deeply to read. Fix: send "
                            "records of plain values") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
        raise ApiError(422, f"body is not valid JSON ({_short(str(e))})") from None
    bad = _first_non_finite(body)
    if bad is not None:
        raise ApiError(422, f"{bad[0]}: {_short(bad[1])} is not a finite number. Fix: send "
                            "a number in float range, or null for a missing value")
    return body


def _short(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters: an error never echoes an unbounded input."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


async def read_body(request: Request) -> bytes:
    """The raw body (the guard has already bounded its size)."""
    return await request.body()


async def read_form(request: Request, limits: ServerLimits) -> Any:
    """The multipart form, at most ``max_batch`` files and 100 other fields."""
    return await request.form(max_files=limits.max_batch, max_fields=100)


def check_count(n: int, limit: int, what: str, flag: str) -> None:
    if n > limit:
        raise ApiError(413, f"{n} {what} in one request; this server takes at most {limit}. "
                            f"Fix: send them in several requests, or start the server with "
                            f"{flag} {n}")


@contextmanager
def decode_limits(limits: ServerLimits, state: dict[str, Any] | None) -> Iterator[None]:
    """Around a predictor call (in its thread): images over the pixel limit are not decoded."""
    from launchml.data.images import pixel_limit

    with pixel_limit(limits.pixels_for(state), "start the server with a higher --max-pixels"):
        yield


# ---------------------------------------------------------------- the guard (ASGI)
_EXEMPT_METHODS = {"GET", "HEAD", "OPTIONS"}  # health, model info, docs: never queued


class _Guard:
    """Refuses bodies over ``max_body`` (by Content-Length, or while reading) and holds
    non-GET requests to ``max_concurrent`` at once, ``max_queue`` waiting, 503 beyond."""

    def __init__(self, app: Any, limits: ServerLimits) -> None:
        self.app, self.limits = app, limits
        self.waiting = 0
        self._slots: tuple[Any, Any] | None = None  # (event loop, its asyncio.Semaphore)

    def _semaphore(self) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # a test client's new loop
            self._slots = (loop, asyncio.Semaphore(self.limits.max_concurrent))
        return self._slots[1]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.max_body
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            return await error_response(413, _too_big(int(length), limit))(scope, receive, send)
        seen = 0

        async def bounded() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ApiError(413, _too_big(seen, limit, streamed=True))
            return message

        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if scope["method"] in _EXEMPT_METHODS:
                return await self.app(scope, bounded, tracked)
            slots = self._semaphore()
            if slots.locked() and self.waiting >= self.limits.max_queue:
                raise ApiError(503, f"the server is busy ({self.limits.max_concurrent} "
                                    f"requests computing, {self.waiting} waiting). Fix: retry "
                                    "after a second", {"Retry-After": "1"})
            self.waiting += 1
            try:
                await slots.acquire()
            finally:
                self.waiting -= 1
            try:
                await self.app(scope, bounded, tracked)
            finally:
                slots.release()
        except ApiError as e:
            if started:
                raise
            await error_response(e.status, e.message, e.headers)(scope, receive, send)


def _too_big(size: int, limit: int, streamed: bool = False) -> str:
    what = f"over {limit / MB:g} MiB" if streamed else f"{size / MB:.1f} MiB"
    return (f"the request body is {what}; this server takes at most {limit / MB:g} MiB. "
            "Fix: send a smaller body (fewer or smaller inputs), or start the server with "
            "a higher --max-body-mb")


# ---------------------------------------------------------------- the app
def install(app: FastAPI, limits: ServerLimits) -> None:
    """The guard and JSON ``{"error": ...}`` answers for every error, on ``app``."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    app.add_middleware(_Guard, limits=limits)
    app.state.limits = limits

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.url.path}; see /docs for the routes"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        elif exc.status_code == 400 and request.headers.get("content-type", "").startswith(
                "multipart/"):
            message = f"the multipart body was refused: {message}"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                 for e in exc.errors()[:5]]
        return error_response(422, _short("; ".join(parts), 1000))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        return error_response(400, "the client closed the connection")  # never read

    @app.exception_handler(RecursionError)
    async def _deep(_: Request, exc: RecursionError) -> JSONResponse:
        return error_response(422, "the input is nested too deeply")

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal server error ({type(exc).__name__}); the "
                                   "server log has the details")


# ---------------------------------------------------------------- the connection
def protocol_class(limits: ServerLimits) -> type:
    """uvicorn's h11 HTTP protocol with the connection limits: a connection that sends
    nothing for ``idle_timeout_s`` is closed; a request (head and body) must arrive
    within ``request_timeout_s`` of its first byte (408, or the connection is closed);
    over ``max_connections`` the oldest idle connection is closed (503 if none is
    idle); a malformed or oversized request head gets a JSON 400."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._timer: Any = None
            self._since = self.loop.time()
            self._arm(limits.idle_timeout_s)
            if len(self.connections) > limits.max_connections and not self._make_room():
                self._reply(503, "the server has too many open connections. Fix: retry "
                                 "after a second")

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _idle(self) -> bool:
            """No request being received or answered."""
            return self.conn.their_state is h11.IDLE and (
                self.cycle is None or self.cycle.response_complete)

        def _make_room(self) -> bool:
            idle = [c for c in self.connections if c is not self
                    and isinstance(c, GuardedH11Protocol) and c._idle()
                    and not c.transport.is_closing()]
            if not idle:
                return False
            min(idle, key=lambda c: c._since).transport.close()
            return True

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE and (self._timer is None
                                                      or self._timer_kind != "request"):
                self._arm(limits.request_timeout_s)  # the first byte of a request
                self._timer_kind = "request"
            super().data_received(data)
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                self._disarm()  # the request has arrived (or the connection failed)
                self._timer_kind = ""

        _timer_kind = ""

        def on_response_complete(self) -> None:
            self._since = self.loop.time()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _expire(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self._idle() and self.conn.our_state is h11.IDLE and self._timer_kind:
                self._reply(408, f"the request did not arrive within "
                                 f"{limits.request_timeout_s:g} s")
            else:
                self.transport.close()  # idle, or a slow body: the app sees a disconnect

        def _reply(self, status: int, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            head = (f"HTTP/1.1 {status} {_PHRASES.get(status, '')}\r\ncontent-type: "
                    f"application/json\r\ncontent-length: {len(body)}\r\nconnection: close"
                    "\r\n\r\n").encode()
            self.transport.write(head + body)
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            self._reply(400, f"{msg} (the request line and headers may be at most "
                             f"{limits.max_header_kb} KiB)")

    return GuardedH11Protocol


_PHRASES = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}


def uvicorn_config(app: Any, *, host: str, port: int, limits: ServerLimits,
                   log_level: str = "info") -> Any:
    """uvicorn's Config for ``app`` with the limits' protocol and timeouts."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          http=protocol_class(limits), ws="none",
                          timeout_keep_alive=max(1, int(limits.idle_timeout_s)),
                          h11_max_incomplete_event_size=limits.max_header_kb * 1024,
                          timeout_graceful_shutdown=5)


def loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


__all__ = ["ApiError", "ServerLimits", "check_count", "decode_limits", "error_response",
           "install", "loopback", "parse_json", "protocol_class", "read_body", "read_form",
           "uvicorn_config"]
