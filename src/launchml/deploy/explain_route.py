"""``POST /v1/explain`` and ``GET /report``, added to the server by ``add_explain``.

    POST /v1/explain[?method=auto&target=<label>&overlay=true|&format=png]
        the same body as /v1/predict (uploads or base64 images; JSON records or CSV);
        answers {"explanations": [{input, prediction, output, method, baseline, cost,
        value, base_value, contributions, tokens, ...}]}; ``overlay=true`` adds each
        image's heat-map overlay as base64 PNG, ``format=png`` answers the first
        image's overlay as image/png (curl -o why.png).
    GET  /report         the run's evaluation/report.html (404 when there is none)

Inputs are read by the same code and within the same limits as /v1/predict;
explanations are costlier than predictions, so one request explains at most
``MAX_EXPLAIN`` inputs (a 413 beyond, saying to split the request).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from launchml.deploy.limits import ApiError, ServerLimits, decode_limits
from launchml.deploy.predictor import Predictor
from launchml.errors import InputError

MAX_EXPLAIN = 64  # inputs explained per request


def report_path(predictor: Predictor) -> Path | None:
    """The report of the run the package belongs to (or one shipped inside it)."""
    pkg = predictor.package.path
    for path in (pkg / "report.html", pkg.parent / "evaluation" / "report.html"):
        if path.is_file():
            return path
    return None


def add_explain(app: FastAPI, predictor: Predictor, limits: ServerLimits,
                read_inputs: Callable[..., Awaitable[Any]],
                read_records: Callable[..., Awaitable[Any]]) -> None:
    """Add the routes; ``read_inputs`` / ``read_records`` are the server's body readers
    for /v1/predict (the same parsing, limits and errors)."""
    pkg = predictor.package
    images = predictor.image_column is not None
    image_state = pkg.preprocessing.get(predictor.image_column or "")
    from launchml.deploy.server import record_reader

    reader = record_reader(pkg)

    lock = threading.Lock()  # Captum's hooks sit on shared modules: one at a time

    def run(inputs: Any, names: list[str] | None, method: str, target: str | None,
            overlay: bool) -> list[dict[str, Any]]:
        from launchml.explain.render import overlay_png

        with lock, decode_limits(limits, image_state):
            from launchml.explain import explain

            # image uploads are named by their file names, records by their position
            found = explain(predictor, inputs, method=method, target=target, names=names)
        out = []
        for e in found:
            d = e.to_dict()
            if overlay and e.heatmap is not None and e.image is not None:
                d["overlay_png"] = base64.b64encode(overlay_png(e.image, e.heatmap)).decode()
            out.append(d)
        return out

    @app.post("/v1/explain")
    async def explain(request: Request, method: str = "auto", target: str | None = None,
                      overlay: bool = False, format: str = "json") -> Any:
        if format not in ("json", "png"):
            raise ApiError(422, f"format must be json or png; got {format[:20]!r}")
        if format == "png" and not images:
            raise ApiError(422, "format=png is for image models (an overlay); this model "
                                "takes records. Fix: leave format out for JSON attributions")
        if images:
            blobs, names = await read_inputs(request, limits)
            inputs: Any = blobs
        else:
            inputs, names = await read_records(request, reader, limits), None
        if len(inputs) > MAX_EXPLAIN:
            raise ApiError(413, f"{len(inputs)} inputs in one explain request; it explains at "
                                f"most {MAX_EXPLAIN}. Fix: send them in several requests")
        try:
            rows = await run_in_threadpool(run, inputs, names, method, target,
                                           overlay or format == "png")
        except InputError as e:  # a bad method or target is the request's fault: 422
            if "method" in str(e) or "target" in str(e):
                raise ApiError(422, str(e)) from None
            raise
        if format == "png":
            return Response(base64.b64decode(rows[0]["overlay_png"]), media_type="image/png")
        return {"explanations": rows}

    @app.get("/report", include_in_schema=True)
    def report() -> FileResponse:
        path = report_path(predictor)
        if path is None:
            raise ApiError(404, "this package has no evaluation report. Fix: run the evaluate "
                                "stage (launchml run <config> --stages evaluate) and serve the "
                                "run's model/ folder")
        return FileResponse(path, media_type="text/html")

