"""HTTP request metrics for /metrics: requests and their latency by route template, method and
status class.

prometheus-fastapi-instrumentator finds each request's route template (/v1/works/{work_id}, not
the path: one series per route, however many works), also for FastAPI's included routers and
mounted static files; a path no route matches is counted as "none". The counters are clipgate's
own, in the process registry (so in PROMETHEUS_MULTIPROC_DIR's files too when that is set), and
shared by every app in the process. A method no route serves is counted as "other": a client
must not be able to mint label values.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info

from clipgate import metrics

LABELS = ("route", "method", "status")
REQUESTS = metrics.counter(
    "clipgate_http_requests", "HTTP requests answered, by route template, method and status "
    "class (2xx..5xx; route 'none': no route matched)", LABELS)
LATENCY = metrics.histogram(
    "clipgate_http_request_seconds", "Time to answer an HTTP request (to its last byte), by "
    "route template, method and status class", LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _record(info: Info) -> None:
    method = info.method if info.method in METHODS else "other"
    labels = {"route": info.modified_handler, "method": method, "status": info.modified_status}
    REQUESTS.labels(**labels).inc()
    LATENCY.labels(**labels).observe(info.modified_duration)


def install(app: FastAPI) -> None:
    """Count every request this app answers (add it last: it times the whole stack inside)."""
    Instrumentator(should_group_status_codes=True, should_group_untemplated=True,
                   should_ignore_untemplated=False).add(_record).instrument(app)
