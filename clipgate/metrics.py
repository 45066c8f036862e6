"""Prometheus metrics: the registry and its exposition (the domains record their own).

Two kinds:
- Counters and histograms a domain updates where the thing happens (`counter`, `histogram`:
  verdicts in compliance's gate, notice failures in complaints' notify). They live in
  prometheus_client's process registry, or, in a worker whose environment names
  PROMETHEUS_MULTIPROC_DIR, in files there that the worker's parent sums over its children.
- Gauges read from the shared state when scraped (`gauge_source`: queue depth, review backlog,
  the signing certificate's expiry, the index's size). A domain registers a function that yields
  samples for given settings. They describe the whole deployment, so only the API serves them
  (a worker's /metrics carries its own counters): a source that fails is reported by
  clipgate_metrics_source_up 0, never by a failed scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from clipgate.settings import Settings

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# (name, help, labels, value): one gauge sample.
Sample = tuple[str, str, dict[str, str], float]
GaugeSource = Callable[[Settings], Iterable[Sample]]
_sources: dict[str, GaugeSource] = {}


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    """A counter in the process registry (name without the _total suffix)."""
    return Counter(name, doc, list(labels))


def histogram(name: str, doc: str, labels: Sequence[str] = (),
              buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
    """A histogram in the process registry (seconds, by convention)."""
    return Histogram(name, doc, list(labels), buckets=buckets)


def gauge_source(name: str, source: GaugeSource) -> None:
    """Register (or replace) a named source of gauges read at scrape time."""
    _sources[name] = source


def remove_gauge_source(name: str) -> None:
    _sources.pop(name, None)


class _Gauges:
    """A collector that reads every gauge source for one set of settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        up = GaugeMetricFamily("clipgate_metrics_source_up",
                               "1 when the gauge source answered at this scrape", labels=["source"])
        for source_name, source in sorted(_sources.items()):
            try:
                samples = list(source(self.settings))
            except Exception as e:  # a scrape reports a part that is down, never fails
                log.warning("metrics source %s failed: %s", source_name, e)
                up.add_metric([source_name], 0)
                continue
            up.add_metric([source_name], 1)
            for name, doc, labels, value in samples:
                keys = sorted(labels)
                family = families.setdefault(name, GaugeMetricFamily(name, doc, labels=keys))
                family.add_metric([labels[k] for k in keys], float(value))
        yield from families.values()
        yield up


class _ProcessMetrics:
    """The process registry's metrics, as a collector another registry can hold."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def registry(settings: Settings | None = None) -> CollectorRegistry:
    """What a scrape sees: this process's (or, in multiprocess mode, every child's) counters and
    histograms, plus the gauge sources for settings when given."""
    reg = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(reg)
    else:
        reg.register(_ProcessMetrics())  # type: ignore[arg-type]
    if settings is not None:
        reg.register(_Gauges(settings))  # type: ignore[arg-type]
    return reg


def render(settings: Settings | None = None) -> bytes:
    """The text exposition format."""
    return generate_latest(registry(settings))


def serve_worker(settings: Settings) -> Any:
    """Serve a worker's own counters and histograms on settings.worker_metrics_port, from a
    thread of the worker's parent process. Celery's prefork children record into
    PROMETHEUS_MULTIPROC_DIR, which must be set (and writable) before the process starts: the
    children's counts would be invisible otherwise. Files left by an earlier run are removed."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        raise ValueError(f"CLIPGATE_WORKER_METRICS_PORT={settings.worker_metrics_port} needs "
                         f"{MULTIPROC_ENV} set to an empty writable directory before the worker "
                         "starts (its child processes write their counts there)")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    server, _thread = start_http_server(settings.worker_metrics_port,
                                        addr=settings.worker_metrics_host, registry=registry())
    log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_host,
             settings.worker_metrics_port)
    return server
