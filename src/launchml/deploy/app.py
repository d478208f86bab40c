"""The production server: several models, micro-batching, API keys, metrics, roll-outs.

    launchml serve --registry --models cancer@champion,digits@champion \\
        --api-key-file keys.txt --workers 2

    POST /v1/models/{name}/predict   records (JSON or CSV) or images (multipart or base64),
                                     one or many per request: {"predictions": [...]}
    POST /v1/models/{name}/explain   the same bodies (when the explain stage is installed)
    GET  /v1/models                  what is served: name, version, engine, task
    GET  /v1/models/{name}           one model: its inputs, labels, version, metrics
    POST /v1/models/{name}/refresh   check its alias now (admin)
    GET  /healthz, /readyz           alive; ready (every model loaded, not shutting down)
    GET  /metrics                    Prometheus (admin when keys are set)
    GET  /docs                       OpenAPI: each model's request and answer

The limits, timeouts and ``{"error": ...}`` answers of ``deploy.limits`` apply to
every route. Requests are scored by each model's micro-batcher
(``deploy.batching``) in a worker thread; the version that scores is the one
current when the request arrived, so a roll-out (``deploy.models``) drops none.
With API keys (``deploy.auth``) every model route needs the ``predict`` scope and
/metrics and refresh need ``admin``; /healthz and /readyz stay open for probes.
CORS is off unless origins are given. On SIGTERM uvicorn stops accepting, finishes
the requests in flight, then the batchers answer what is queued. Nothing is
unpickled: packages are JSON, safetensors, LightGBM text and ONNX.
"""

from __future__ import annotations

import re
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from launchml.errors import missing_dependency

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
except ImportError as e:
    raise missing_dependency(e.name or "fastapi", "serve", "the REST server") from e

from launchml.data.images import ImageTooLargeError
from launchml.deploy.auth import request_key
from launchml.deploy.limits import ApiError, install
from launchml.deploy.metrics import Metrics
from launchml.deploy.models import Loaded, ModelManager, ServeOptions, Source
from launchml.deploy.server import (
    add_docs,
    read_inputs,
    read_records,
    record_reader,
    request_body,
)
from launchml.errors import InputError

_ROUTE = re.compile(r"^/v1/models/([^/]+)(?:/(predict|explain|refresh))?$")


class _Observe:
    """ASGI middleware: latency and status code of every model route, by model."""

    def __init__(self, app: Any, metrics: Metrics, names: frozenset[str]) -> None:
        self.app, self.metrics, self.names = app, metrics, names

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        m = _ROUTE.match(scope.get("path", "")) if scope["type"] == "http" else None
        if m is None:
            return await self.app(scope, receive, send)
        start, code = time.perf_counter(), 500

        async def sending(message: Any) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        model = m[1] if m[1] in self.names else "-"  # no label per unknown name sent
        gauge = self.metrics.in_progress.labels(model)
        gauge.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            gauge.dec()
            self.metrics.observe(model, m[2] or "info", code, time.perf_counter() - start)


def _answer_model(name: str, loaded: Loaded) -> Any:
    """The pydantic answer of ``name``'s predict route (for the OpenAPI page)."""
    from typing import Literal

    from pydantic import ConfigDict, create_model

    safe = re.sub(r"\W", "_", name)
    labels = tuple(loaded.predictor.labels)
    task = loaded.predictor.task.name
    fields: dict[str, Any] = {"input": (str | int, ...)}
    if task == "regression":
        fields["value"] = (float, ...)
    else:
        label = Literal[labels] if labels else str  # type: ignore[valid-type]
        fields["labels" if task == "multilabel" else "label"] = (
            list[label] if task == "multilabel" else label, ...)
        fields["probabilities"] = (dict[str, float], ...)
    row = create_model(f"{safe}_prediction", __config__=ConfigDict(extra="allow"), **fields)
    return create_model(f"{safe}_predictions", model=(str, ...), version=(int | None, None),
                        predictions=(list[row], ...))  # type: ignore[valid-type]


def create_models_app(sources: list[Source], options: ServeOptions | None = None) -> FastAPI:
    """The app serving ``sources`` (loaded now, before it answers anything)."""
    options = options or ServeOptions()
    # batching needs requests in flight together: at least a batch per model may compute
    limits = options.limits
    if options.max_batch_size > 1:
        limits = replace(limits, max_concurrent=max(
            limits.max_concurrent, options.max_batch_size * len(sources)))
    options = replace(options, limits=limits)
    metrics = Metrics()
    manager = ModelManager(sources, options, metrics)
    manager.load_all()
    keys = options.api_keys

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        manager.start()
        yield
        await manager.stop()

    names = ", ".join(f"'{n}'" for n in manager.slots)
    app = FastAPI(title="launchml model server", version="1",
                  description=f"Serves {names}.", docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    install(app, limits)
    add_docs(app)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(_Observe, metrics=metrics, names=frozenset(manager.slots))
    app.state.manager, app.state.metrics = manager, metrics

    def require(request: Request, scope: str) -> None:
        if keys is None or not keys.enabled:
            return
        key = request_key({k.decode("latin-1").lower(): v.decode("latin-1")
                           for k, v in request.scope["headers"]})
        scopes = keys.scopes(key)
        if not scopes:
            raise ApiError(401, "a valid API key is needed: send 'Authorization: Bearer "
                                "<key>' or 'X-API-Key: <key>'", {"WWW-Authenticate": "Bearer"})
        if scope not in scopes:
            raise ApiError(403, f"this API key lacks the '{scope}' scope")

    def current(name: str) -> Loaded:
        slot = manager.slots.get(name)
        if slot is None:
            raise ApiError(404, f"no model '{name[:100]}'; served: {names}")
        if slot.current is None:
            raise ApiError(503, f"model '{name}' is not loaded yet", {"Retry-After": "1"})
        return slot.current

    async def read(request: Request, loaded: Loaded) -> list[Any]:
        if loaded.images:
            blobs, given = await read_inputs(request, limits)
            return list(zip(blobs, given, strict=True))
        return await read_records(request, record_reader(loaded.predictor.package), limits)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        missing = [n for n, s in manager.slots.items() if s.current is None]
        if manager.stopping or missing:
            return JSONResponse({"status": "not ready", "error": "shutting down" if
                                 manager.stopping else f"not loaded: {missing}"},
                                status_code=503)
        return JSONResponse({"status": "ready", "models": {
            n: s.current.version for n, s in manager.slots.items()}})

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        require(request, "admin")
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    @app.get("/v1/models")
    def list_models(request: Request) -> dict[str, Any]:
        require(request, "predict")
        return {"models": [{k: v for k, v in s.current.info().items()
                            if k in ("name", "ref", "version", "engine", "task")}
                           for s in manager.slots.values() if s.current is not None]}

    explainable = _explain_available()
    for name, slot in manager.slots.items():
        _add_model_routes(app, name, slot.current, current, require, read, manager,
                          explainable)
    _follow_openapi(app, manager)
    return app


def _follow_openapi(app: FastAPI, manager: ModelManager) -> None:
    """/openapi.json (and so /docs) describes the versions serving now: FastAPI caches
    the schema it made from the routes (``app.openapi_schema``), whose request bodies
    and answers are those of the versions loaded at start; after an alias moves to a
    version with other inputs or labels, the schema is made again for the current ones."""
    generate = app.openapi  # FastAPI's: from the routes, cached in app.openapi_schema
    made_for = [-1]  # the manager's generation the cached schema describes

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None or made_for[0] != manager.generation:
            generation = manager.generation
            app.openapi_schema = None
            schema = generate()
            for name, slot in manager.slots.items():
                if slot.current is not None:
                    _document_version(schema, name, slot.current)
            app.openapi_schema, made_for[0] = schema, generation
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_version(schema: dict[str, Any], name: str, loaded: Loaded) -> None:
    """Set ``name``'s request bodies and answer in ``schema`` to ``loaded``'s."""
    import copy

    body = request_body(loaded.predictor)["requestBody"]
    served = f"Served now: {loaded.ref}" + (f" (version {loaded.version})"
                                             if loaded.version is not None else "") + "."
    for action in ("predict", "explain"):
        op = schema.get("paths", {}).get(f"/v1/models/{name}/{action}", {}).get("post")
        if op is not None:
            op["requestBody"] = copy.deepcopy(body)
            op["description"] = served
    op = schema.get("paths", {}).get(f"/v1/models/{name}/predict", {}).get("post")
    if op is None:
        return
    answer = _answer_model(name, loaded)
    found = answer.model_json_schema(ref_template="#/components/schemas/{model}",
                                     mode="serialization")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(found.pop("$defs", {}))
    components[answer.__name__] = found
    op.setdefault("responses", {}).setdefault("200", {})["content"] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{answer.__name__}"}}}


def _explain_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("launchml.explain") is not None


def _add_model_routes(app: FastAPI, name: str, first: Loaded, current: Any, require: Any,
                      read: Any, manager: ModelManager, explainable: bool) -> None:
    answer = _answer_model(name, first)
    body = request_body(first.predictor)

    @app.get(f"/v1/models/{name}", summary=f"{name}: inputs, labels, version")
    def model_info(request: Request) -> dict[str, Any]:
        require(request, "predict")
        return current(name).info()

    @app.post(f"/v1/models/{name}/predict", summary=f"predict with {name}",
              response_model=answer, openapi_extra=body)
    async def predict(request: Request) -> Response:
        require(request, "predict")
        loaded = current(name)  # this version answers, whatever moves meanwhile
        items = await read(request, loaded)
        rows = await loaded.batcher.submit(items, return_exceptions=True)
        for i, e in enumerate(rows):  # the first bad input fails this request (only)
            if isinstance(e, ImageTooLargeError):
                raise ApiError(413, str(e))
            if isinstance(e, InputError):
                where = f"'{items[i][1]}'" if loaded.images else f"records[{i}]"
                raise ApiError(415 if loaded.images else 422,
                               str(e) if where in str(e) else f"{where}: {e}")
            if isinstance(e, BaseException):
                raise e
        if not loaded.images:  # a record's input is its place in this request
            rows = [{**r, "input": i} for i, r in enumerate(rows)]
        return JSONResponse({"model": name, "version": loaded.version, "predictions": rows})

    @app.post(f"/v1/models/{name}/refresh", summary=f"check {name}'s alias now (admin)")
    async def refresh(request: Request) -> dict[str, Any]:
        require(request, "admin")
        current(name)
        return await manager.refresh(name)

    if not explainable:
        return

    import threading

    lock = threading.Lock()  # attribution hooks sit on shared modules: one at a time

    @app.post(f"/v1/models/{name}/explain", summary=f"why {name} answers as it does",
              openapi_extra=body)
    async def explain(request: Request, method: str = "auto", target: str | None = None
                      ) -> Response:
        from fastapi.concurrency import run_in_threadpool

        from launchml.deploy.limits import decode_limits

        require(request, "predict")
        loaded = current(name)
        items = await read(request, loaded)
        if len(items) > 64:
            raise ApiError(413, f"{len(items)} inputs to explain in one request; at most 64. "
                                "Fix: split the request")

        def run() -> list[dict[str, Any]]:
            from launchml.explain import explain as explain_inputs

            inputs = [b for b, _ in items] if loaded.images else items
            given = [n for _, n in items] if loaded.images else None
            with lock, decode_limits(loaded.limits, loaded.image_state):
                found = explain_inputs(loaded.predictor, inputs, method=method, target=target,
                                       names=given)
            return [e.to_dict() for e in found]

        try:
            out = await run_in_threadpool(run)
        except ImageTooLargeError as e:
            raise ApiError(413, str(e)) from None
        except InputError as e:
            raise ApiError(415 if loaded.images else 422, str(e)) from None
        return JSONResponse({"model": name, "version": loaded.version, "explanations": out})


# ---------------------------------------------------------------- running it
def _worker(sources: list[Source], options: ServeOptions, host: str, port: int,
            sock: Any) -> None:
    """One worker process: its own app (models, batchers) on the shared socket."""
    import uvicorn

    from launchml.deploy.limits import uvicorn_config

    config = uvicorn_config(create_models_app(sources, options), host=host, port=port,
                            limits=options.limits)
    uvicorn.Server(config).run(sockets=[sock])


def serve_models(sources: list[Source], options: ServeOptions, *, host: str = "127.0.0.1",
                 port: int = 8000, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT; ``workers`` processes share one listening socket."""
    import uvicorn

    from launchml.deploy.limits import uvicorn_config

    if workers <= 1:
        config = uvicorn_config(create_models_app(sources, options), host=host, port=port,
                                limits=options.limits)
        uvicorn.Server(config).run()
        return
    import multiprocessing
    import os
    import signal
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(sources, options, host, port, sock),
                         name=f"launchml-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    import sys

    sys.stderr.write(f"launchml: {workers} workers serving on http://{host}:{port}\n")

    def forward(signum: int, _: Any) -> None:  # each worker shuts down gracefully
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
    sock.close()
