"""Prometheus metrics of the model server (``GET /metrics``).

    launchml_request_seconds{model, route}     latency histogram of answered requests
    launchml_requests_total{model, route, code} requests by status code
    launchml_errors_total{model, code}          4xx and 5xx answers, by code
    launchml_requests_in_progress{model}        requests being answered now
    launchml_batch_size{model}                  inputs per micro-batch (histogram)
    launchml_batch_seconds{model}               time to score one batch (histogram)
    launchml_model_loaded{model, version, ref}  1 for the version each model serves
    launchml_model_swaps_total{model, result}   alias moves: swapped or rejected

Each app has its own registry (two apps in one process, as in tests, do not clash).
"""

from __future__ import annotations

from typing import Any

try:
    import prometheus_client as prom
except ImportError as e:
    from launchml.errors import missing_dependency

    raise missing_dependency(e.name or "prometheus_client", "serve", "the server's metrics"
                             ) from e

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.latency = prom.Histogram("launchml_request_seconds", "request latency",
                                      ["model", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.requests = prom.Counter("launchml_requests_total", "requests by status code",
                                     ["model", "route", "code"], registry=r)
        self.errors = prom.Counter("launchml_errors_total", "error answers by status code",
                                   ["model", "code"], registry=r)
        self.batch_size = prom.Histogram("launchml_batch_size", "inputs per micro-batch",
                                         ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = prom.Histogram("launchml_batch_seconds", "scoring time of a batch",
                                            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_progress = prom.Gauge("launchml_requests_in_progress",
                                      "requests being answered", ["model"], registry=r)
        self.loaded = prom.Gauge("launchml_model_loaded", "the version each model serves",
                                 ["model", "version", "ref"], registry=r)
        self.swaps = prom.Counter("launchml_model_swaps_total", "alias moves followed",
                                  ["model", "result"], registry=r)
        self._loaded: dict[str, tuple[str, str]] = {}

    def observe(self, model: str, route: str, code: int, seconds: float) -> None:
        self.latency.labels(model, route).observe(seconds)
        self.requests.labels(model, route, str(code)).inc()
        if code >= 400:
            self.errors.labels(model, str(code)).inc()

    def batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.batch_seconds.labels(model).observe(seconds)

    def set_loaded(self, model: str, version: str, ref: str) -> None:
        old = self._loaded.get(model)
        if old is not None:
            self.loaded.remove(model, *old)
        self.loaded.labels(model, version, ref).set(1)
        self._loaded[model] = (version, ref)

    def render(self) -> tuple[bytes, str]:
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST


def parse(text: str) -> dict[str, Any]:
    """{sample name + labels: value} of a /metrics page (for tests and the benchmark)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out
