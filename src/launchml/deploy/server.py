"""The REST server (FastAPI): ``launchml serve runs/<name>/model``.

    GET  /healthz        liveness and the loaded model's name
    GET  /v1/model       the package's task, labels and input schema
    POST /v1/predict     multipart upload(s) in field ``file`` (repeatable), or JSON
                         {"image": "<base64>"} / {"images": ["<base64>", ...]}
    POST /v1/explain     the same inputs: attributions as JSON, an overlay PNG on request
    GET  /report         the run's evaluation report (deploy/explain_route.py)
    GET  /docs           OpenAPI docs (Swagger UI; /redoc: ReDoc), served offline

Any other model (tables, text, mixed inputs) takes JSON ``{"records": [{column:
value, ...}, ...]}``; a missing or mistyped field, or a NaN / Infinity / 1e400, is a
422 naming it. The request body in the OpenAPI docs is generated from the package's
input schema; the docs show no path of the server's files.

Every error is JSON ``{"error": ...}``: a bad upload (not an image, bad base64, wrong
content type) is a 4xx; what is over a limit (body size, images or records per
request, an image's pixels) is a 413 naming the limit and its flag; a busy server
answers 503 with Retry-After; only a fault of the server itself is a 500. The limits
and their defaults are ``deploy.limits.ServerLimits`` (``launchml serve --help``).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from launchml.errors import InputError, missing_dependency

try:  # the [serve] extra; python-multipart parses the uploads (request.form())
    import python_multipart  # noqa: F401
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.datastructures import UploadFile
except ImportError as e:
    raise missing_dependency(e.name or "fastapi", "serve", "the REST server") from e

from launchml.data.images import ImageTooLargeError
from launchml.deploy.limits import (
    ApiError,
    ServerLimits,
    check_count,
    decode_limits,
    error_response,
    install,
    loopback,
    parse_json,
    read_body,
    read_form,
    uvicorn_config,
)
from launchml.deploy.predictor import Predictor

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array",
                                            "items": {"type": "string", "format": "binary"}}},
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "description": "base64 image file"},
                        "images": {"type": "array", "items": {"type": "string"}},
                    },
                }
            },
        },
    }
}


# JSON schema of a record field, by column type
_FIELD = {"number": {"type": "number"}, "boolean": {"type": "boolean"},
          "datetime": {"type": "string", "format": "date-time"},
          "image": {"type": "string", "format": "byte", "contentEncoding": "base64",
                    "description": "the image file as base64 (or a data: URI); a path is "
                                   "read only inside the server's --image-root folder"}}


def request_body(predictor: Predictor) -> dict[str, Any]:
    """The OpenAPI request body for this package's inputs."""
    if predictor.image_column is not None:
        return _IMAGE_BODY
    inputs = predictor.package.schema.inputs
    record = {"type": "object",
              "properties": {c.name: {**_FIELD.get(c.type, {"type": "string"}),
                                      "title": f"{c.name} ({c.type})"} for c in inputs},
              "required": [c.name for c in inputs]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["records"],
        "properties": {"records": {"type": "array", "items": record}}}}}}}


_BadRequest = ApiError  # the old name


async def _read_inputs(request: Request, limits: ServerLimits
                       ) -> tuple[list[bytes], list[str]]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await read_form(request, limits)
        uploads = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
        if not uploads:
            raise ApiError(422, "multipart body has no file field 'file'. Fix: -F file=@x.png")
        return [await u.read() for u in uploads], [u.filename or "upload" for u in uploads]
    if ctype.startswith("application/json"):
        body = parse_json(await read_body(request))
        if not isinstance(body, dict) or not ({"image", "images"} & set(body)):
            raise ApiError(422, 'JSON body needs "image": "<base64>" or "images": [...]')
        items = [body["image"]] if "image" in body else body["images"]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ApiError(422, '"image" must be a base64 string, "images" a list of them')
        check_count(len(items), limits.max_batch, "images", "--max-batch")
        out = []
        for i, item in enumerate(items):
            try:
                payload = "".join(item.split(",", 1)[-1].split())  # data: URLs, wrapped lines
                out.append(base64.b64decode(payload, validate=True))
            except (binascii.Error, ValueError):
                raise ApiError(422, f"image {i} is not valid base64") from None
        return out, [f"image{i}" for i in range(len(out))]
    raise ApiError(415, f"unsupported content type '{ctype[:100] or 'none'}'; send "
                        "multipart/form-data (field 'file') or application/json")


_SCALARS = (str, int, float, bool, type(None))


def record_reader(package: Any) -> dict[str, Any]:
    """How a route reads a package's records: the training file's reader (delimiter,
    decimal separator), its number columns and its image columns."""
    states = package.preprocessing
    return {**(package.meta["provenance"].get("reader") or {}),
            "numbers": [c for c, st in states.items() if st["type"] == "number"],
            "images": [c for c, st in states.items() if st["type"] == "image"]}


def _image_field(value: Any, where: str, root: str | None) -> Any:
    """A record's image on the server: base64 data (or a data: URI) -> bytes. A path is
    opened only when the operator named a folder (--image-root) and it resolves inside
    it (symlinks followed, then checked): a client never makes the server read a file of
    its own choosing."""
    if not isinstance(value, str):
        return value  # null: reported as empty by the column's transform
    text = value.strip()
    if root is not None and not text.startswith("data:"):
        base = Path(root).resolve()
        path = Path(text)
        inside = text and not path.is_absolute() and ".." not in path.parts and \
            (base / path).resolve().is_relative_to(base)
        if inside and (base / path).resolve().is_file():
            return (base / path).resolve()
    try:
        payload = "".join(text.split(",", 1)[-1].split()) if text.startswith("data:") \
            else "".join(text.split())
        if payload:
            return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        pass
    if root is not None:
        why, fix = ("nor a file inside the server's --image-root folder", "or a path "
                    "relative to that folder (no '..', no link leading out of it)")
    else:
        why, fix = ("and the server opens no path a request names", "or start the server "
                    "with --image-root DIR to let it read relative paths inside DIR")
    raise ApiError(422, f"{where} is {text[:100]!r}, which is not base64 image data {why}. "
                        f"Fix: send the image file as base64 (or a data: URI), {fix}")


def _decode_images(records: list[dict[str, Any]], reader: dict[str, Any],
                   limits: ServerLimits) -> None:
    """Replace each image column's value by the image's bytes (or a path inside
    ``limits.image_root``), in place; 422 naming the field otherwise."""
    for column in reader.get("images", []):
        for i, record in enumerate(records):
            if column in record:
                record[column] = _image_field(record[column], f"records[{i}].{column}",
                                              limits.image_root)


def _check_records(records: list[Any], limits: ServerLimits) -> None:
    check_count(len(records), limits.max_records, "records", "--max-records")
    for i, record in enumerate(records):
        for key, value in record.items():
            if not isinstance(value, _SCALARS):
                raise ApiError(422, f"records[{i}].{str(key)[:100]}: a {type(value).__name__} "
                                    "is not a value of a column. Fix: send a number, a string, "
                                    "true/false or null")


async def _read_records(request: Request, reader: dict[str, Any],
                        limits: ServerLimits | None = None) -> list[dict[str, Any]]:
    """Table models take JSON {"records": [{column: value}, ...]} (or one "record"), or
    a CSV body (``Content-Type: text/csv``, a header line then rows) written as the
    training file was (``reader``: its delimiter and decimal separator)."""
    limits = limits or ServerLimits()
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("text/csv"):
        import io

        import pandas as pd

        try:
            frame = pd.read_csv(io.BytesIO(await read_body(request)), dtype=str,
                                keep_default_na=False, sep=reader.get("delimiter") or ",",
                                nrows=limits.max_records + 1)
        except (ValueError, pd.errors.ParserError) as e:
            raise ApiError(422, f"the CSV body could not be read ({str(e)[:300]})") from None
        if frame.empty:
            raise ApiError(422, "the CSV body has a header but no rows")
        check_count(len(frame), limits.max_records, "records", "--max-records")
        if reader.get("decimal") == ",":  # '23,5' in the number columns, as in training
            from launchml.data.columns import parse_numbers

            for c in reader.get("numbers", []):
                if c in frame:
                    frame[c] = parse_numbers(frame[c].replace("", None), ",")
        # empty cells are missing values, as in a CSV file given to launchml predict
        rows = [{k: (None if v == "" else v) for k, v in r.items()}
                for r in frame.to_dict(orient="records")]
        _decode_images(rows, reader, limits)
        return rows
    try:
        body = parse_json(await read_body(request))
    except ApiError as e:
        raise ApiError(422, f'{e.message}. Send {{"records": [{{...}}]}} as '
                            'application/json, or a CSV as text/csv') from None
    records = body.get("records", [body["record"]] if "record" in body else None) \
        if isinstance(body, dict) else None
    if not isinstance(records, list) or not records or \
            not all(isinstance(r, dict) for r in records):
        raise ApiError(422, 'send {"records": [{"column": value, ...}, ...]}')
    _check_records(records, limits)
    _decode_images(records, reader, limits)
    return records


# the same body readers for every route that takes inputs (deploy/app.py's model routes)
read_inputs = _read_inputs
read_records = _read_records


# Swagger UI and ReDoc, served by the server itself (the fastapi-offline package's files)
_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def _assets_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if all((folder / a).is_file() for a in _ASSETS) else None


def add_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from local files: no CDN, so they work offline."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    folder = _assets_dir()

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if folder is None or name not in _ASSETS:  # a fixed list: no path from the request
            raise ApiError(404, f"no docs asset '{name[:100]}'")
        return FileResponse(folder / name, headers={"Cache-Control": "max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if folder is None:
            return HTMLResponse("<!doctype html><title>launchml model server</title><p>The "
                                "interactive docs need the fastapi-offline package (pip "
                                "install 'launchml[serve]'). The API description is at <a "
                                "href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(openapi_url="/openapi.json",
                                   title=f"{app.title} - docs",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - docs",
                              redoc_js_url="/docs/assets/redoc.standalone.js",
                              redoc_favicon_url="/docs/assets/favicon.png",
                              with_google_fonts=False)


def create_app(predictor: Predictor, limits: ServerLimits | None = None) -> FastAPI:
    limits = limits or ServerLimits()
    pkg = predictor.package
    images = predictor.image_column is not None  # else records
    image_state = pkg.preprocessing.get(predictor.image_column or "")
    reader = record_reader(pkg)
    # no path of the server's files in the docs: the model's name and task only
    app = FastAPI(title="launchml model server", version=str(pkg.meta["format_version"]),
                  description=f"Serves the model '{pkg.meta['model']['name']}' "
                              f"({pkg.meta['task']['name']}).",
                  docs_url=None, redoc_url=None)
    install(app, limits)
    add_docs(app)

    @app.exception_handler(InputError)
    async def _bad_input(_: Request, exc: InputError) -> JSONResponse:
        # an undecodable image is an unsupported media type; a bad table field is a 422
        return error_response(415 if images else 422, str(exc))

    @app.exception_handler(ImageTooLargeError)
    async def _too_large(_: Request, exc: ImageTooLargeError) -> JSONResponse:
        return error_response(413, str(exc))

    def score(inputs: Any, names: list[str] | None = None) -> list[dict[str, Any]]:
        with decode_limits(limits, image_state):  # in the worker thread, around the decode
            return predictor.predict_rows(inputs, names)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": pkg.meta["model"]["name"], "engine": predictor.engines}

    @app.get("/v1/model")
    def model_info() -> dict[str, Any]:
        return {k: pkg.meta[k] for k in ("task", "inputs", "model", "metrics", "format_version")}

    @app.post("/v1/predict", openapi_extra=request_body(predictor))
    async def predict(request: Request) -> dict[str, Any]:
        if not images:
            records = await _read_records(request, reader, limits)
            return {"predictions": await run_in_threadpool(score, records)}
        blobs, names = await _read_inputs(request, limits)
        return {"predictions": await run_in_threadpool(score, blobs, names)}

    from launchml.deploy.explain_route import add_explain

    add_explain(app, predictor, limits, _read_inputs, _read_records)  # /v1/explain, /report
    return app


def exposure_warning(host: str, port: int) -> str | None:
    """What binding ``host`` exposes, when it is not a loopback address."""
    if loopback(host):
        return None
    where = "every network interface" if host in ("0.0.0.0", "::", "") else f"'{host}'"
    return (f"--host {host} serves on {where}: anyone who can reach port {port} can call "
            "POST /v1/predict (and use this machine's CPU and memory), read the model's "
            "labels, input schema and metrics (GET /v1/model, /docs) - no API key is "
            "required. Fix: --api-key-file keys.txt (or LAUNCHML_API_KEYS; `launchml serve "
            "--hash-key <key>` makes a line), or serve on 127.0.0.1 behind a reverse proxy "
            "that authenticates, or allow only trusted addresses in a firewall.")


def serve(predictor: Predictor, *, host: str = "127.0.0.1", port: int = 8000,
          limits: ServerLimits | None = None) -> None:
    try:
        import uvicorn
    except ImportError as e:
        raise missing_dependency("uvicorn", "serve", "launchml serve") from e
    from launchml import console

    limits = limits or ServerLimits()
    warning = exposure_warning(host, port)
    if warning:
        console.warn(warning)
    config = uvicorn_config(create_app(predictor, limits), host=host, port=port,
                            limits=limits)
    uvicorn.Server(config).run()
