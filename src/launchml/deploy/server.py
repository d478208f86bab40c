"""The REST server (FastAPI): ``launchml serve runs/<name>/model``.

    GET  /healthz        liveness and the loaded model's name
    GET  /v1/model       the package's task, labels and input schema
    POST /v1/predict     multipart upload(s) in field ``file`` (repeatable), or JSON
                         {"image": "<base64>"} / {"images": ["<base64>", ...]}
    GET  /docs           OpenAPI docs

Any other model (tables, text, mixed inputs) takes JSON ``{"records": [{column:
value, ...}, ...]}``; a missing or mistyped field is a 422 naming it. The request
body in the OpenAPI docs is generated from the package's input schema.

A bad upload (not an image, bad base64, wrong content type) is a 4xx JSON error
``{"error": ...}``; only a fault of the server itself is a 500.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from launchml.errors import InputError, missing_dependency

try:  # the [serve] extra; python-multipart parses the uploads (request.form())
    import python_multipart  # noqa: F401
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse
    from starlette.datastructures import UploadFile
except ImportError as e:
    raise missing_dependency(e.name or "fastapi", "serve", "the REST server") from e

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
          "image": {"type": "string", "description": "path of an image file on the server"}}


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


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


async def _read_inputs(request: Request) -> tuple[list[bytes], list[str]]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        uploads = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
        if not uploads:
            raise _BadRequest(422, "multipart body has no file field 'file'. Fix: -F file=@x.png")
        return [await u.read() for u in uploads], [u.filename or "upload" for u in uploads]
    if ctype.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise _BadRequest(422, "body is not valid JSON") from None
        if not isinstance(body, dict) or not ({"image", "images"} & set(body)):
            raise _BadRequest(422, 'JSON body needs "image": "<base64>" or "images": [...]')
        items = [body["image"]] if "image" in body else body["images"]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise _BadRequest(422, '"image" must be a base64 string, "images" a list of them')
        out = []
        for i, item in enumerate(items):
            try:
                payload = "".join(item.split(",", 1)[-1].split())  # data: URLs, wrapped lines
                out.append(base64.b64decode(payload, validate=True))
            except (binascii.Error, ValueError):
                raise _BadRequest(422, f"image {i} is not valid base64") from None
        return out, [f"image{i}" for i in range(len(out))]
    raise _BadRequest(415, f"unsupported content type '{ctype or 'none'}'; send "
                           "multipart/form-data (field 'file') or application/json")


async def _read_records(request: Request, reader: dict[str, Any]) -> list[dict[str, Any]]:
    """Table models take JSON {"records": [{column: value}, ...]} (or one "record"), or
    a CSV body (``Content-Type: text/csv``, a header line then rows) written as the
    training file was (``reader``: its delimiter and decimal separator)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("text/csv"):
        import io

        import pandas as pd

        try:
            frame = pd.read_csv(io.BytesIO(await request.body()), dtype=str,
                                keep_default_na=False, sep=reader.get("delimiter") or ",")
        except (ValueError, pd.errors.ParserError) as e:
            raise _BadRequest(422, f"the CSV body could not be read ({e})") from None
        if frame.empty:
            raise _BadRequest(422, "the CSV body has a header but no rows")
        if reader.get("decimal") == ",":  # '23,5' in the number columns, as in training
            from launchml.data.columns import parse_numbers

            for c in reader.get("numbers", []):
                if c in frame:
                    frame[c] = parse_numbers(frame[c].replace("", None), ",")
        # empty cells are missing values, as in a CSV file given to launchml predict
        return [{k: (None if v == "" else v) for k, v in r.items()}
                for r in frame.to_dict(orient="records")]
    try:
        body = await request.json()
    except ValueError:
        raise _BadRequest(422, 'body is not valid JSON; send {"records": [{...}]} as '
                               'application/json, or a CSV as text/csv') from None
    records = body.get("records", [body["record"]] if "record" in body else None) \
        if isinstance(body, dict) else None
    if not isinstance(records, list) or not records or \
            not all(isinstance(r, dict) for r in records):
        raise _BadRequest(422, 'send {"records": [{"column": value, ...}, ...]}')
    return records


def create_app(predictor: Predictor) -> FastAPI:
    pkg = predictor.package
    images = predictor.image_column is not None  # else records
    reader = {**(pkg.meta["provenance"].get("reader") or {}),
              "numbers": [c for c, st in pkg.preprocessing.items() if st["type"] == "number"]}
    app = FastAPI(title="launchml model server", version=str(pkg.meta["format_version"]),
                  description=f"Serves the model package at {pkg.path}.")

    @app.exception_handler(_BadRequest)
    async def _bad(_: Request, exc: _BadRequest) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(InputError)
    async def _bad_input(_: Request, exc: InputError) -> JSONResponse:
        # an undecodable image is an unsupported media type; a bad table field is a 422
        return JSONResponse({"error": str(exc)},
                            status_code=415 if images else 422)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": pkg.meta["model"]["name"], "engine": predictor.engines}

    @app.get("/v1/model")
    def model_info() -> dict[str, Any]:
        return {k: pkg.meta[k] for k in ("task", "inputs", "model", "metrics", "format_version")}

    @app.post("/v1/predict", openapi_extra=request_body(predictor))
    async def predict(request: Request) -> dict[str, Any]:
        if not images:
            records = await _read_records(request, reader)
            return {"predictions": await run_in_threadpool(predictor.predict_rows, records)}
        blobs, names = await _read_inputs(request)
        rows = await run_in_threadpool(predictor.predict_rows, blobs, names)
        return {"predictions": rows}

    return app


def serve(predictor: Predictor, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    try:
        import uvicorn
    except ImportError as e:
        raise missing_dependency("uvicorn", "serve", "launchml serve") from e

    uvicorn.run(create_app(predictor), host=host, port=port, log_level="info")
