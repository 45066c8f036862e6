"""Prometheus /metrics: who may read it, and that each domain's numbers are there and move when
the thing they count happens (a check, a held clip, a failed notice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from asgi_correlation_id import correlation_id
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from clipgate import apikeys, metrics
from clipgate.app import create_app
from complaints import notify
from tests.complaints.conftest import free_port, make_account
from tests.media import noise_frame, write_image


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def admin_key(settings) -> str:
    return apikeys.create_key("ops", role="admin", settings=settings)[1]


def _scrape(client: TestClient, key: str) -> dict:
    r = client.get("/metrics", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return _samples(r.text)


def test_metrics_need_an_admin_key(settings, admin_key):
    gen = apikeys.create_key("gen", role="generator", settings=settings)[1]
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": gen}).status_code == 403
        assert client.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"}
                          ).status_code == 200
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_can_be_opened_for_an_internal_scraper(settings):
    with TestClient(create_app(settings.model_copy(update={"metrics_open": True}))) as client:
        r = client.get("/metrics")
    assert r.status_code == 200 and "clipgate_metrics_source_up" in r.text


def test_a_check_moves_the_verdict_and_latency_metrics(settings, admin_key, tmp_path):
    clip = write_image(tmp_path / "noise.png", noise_frame(7, (320, 240)))
    with TestClient(create_app(settings)) as client:
        before = _scrape(client, admin_key)
        r = client.post("/v1/checks", headers={"X-API-Key": admin_key},
                        files={"file": ("noise.png", clip.read_bytes(), "image/png")})
        assert r.status_code == 200, r.text
        assert r.json()["verdict"] == "release"
        after = _scrape(client, admin_key)
    verdicts = "clipgate_verdicts_total"
    assert (_value(after, verdicts, verdict="release", policy="none")
            == _value(before, verdicts, verdict="release", policy="none") + 1)
    count = "clipgate_gate_stage_seconds_count"
    for stage in ("search", "decide", "record"):
        assert _value(after, count, stage=stage) == _value(before, count, stage=stage) + 1


def test_the_gauges_describe_the_deployment(settings, admin_key):
    with TestClient(create_app(settings)) as client:
        s = _scrape(client, admin_key)
    sources = {dict(k[1])["source"]: v for k, v in s.items()
               if k[0] == "clipgate_metrics_source_up"}
    assert sources == {"compliance.held": 1, "compliance.signer": 1, "complaints.claims": 1,
                       "generator.jobs": 1, "index": 1, "queue": 1}
    assert _value(s, "clipgate_review_backlog", kind="held_clip") == 0
    assert _value(s, "clipgate_review_backlog", kind="claim_submitted") == 0
    assert 300 < _value(s, "clipgate_signing_cert_days_to_expiry") < 4000  # the dev certificate
    assert ("clipgate_index_version", ()) in s
    assert _value(s, "clipgate_index_frames", signal="all") == 0
    assert _value(s, "clipgate_generation_jobs", state="queued") == 0


def test_requests_are_counted_by_route_template(settings, admin_key):
    """Two works' pages are one series, under the route's template (no series per path); a path
    no route has is 'none', a method nobody serves 'other'; latency is a histogram alike."""
    key = {"X-API-Key": admin_key}
    route = {"route": "/v1/works/{work_id}", "method": "GET", "status": "4xx"}
    with TestClient(create_app(settings)) as client:
        before = _scrape(client, admin_key)
        for n in range(2):
            work = f"00000000-0000-4000-8000-00000000000{n}"
            assert client.get(f"/v1/works/{work}", headers=key).status_code == 404
        assert client.get("/no/such/path/4711").status_code == 404
        assert client.request("BREW", "/v1/health/live").status_code == 405
        assert client.get("/static/complaints/site.css").status_code == 200
        text = client.get("/metrics", headers=key).text
    after = _samples(text)
    requests, seconds = "clipgate_http_requests_total", "clipgate_http_request_seconds_count"
    for name in (requests, seconds):
        assert _value(after, name, **route) == _value(before, name, **route) + 2
    none = {"route": "none", "method": "GET", "status": "4xx"}
    assert _value(after, requests, **none) == _value(before, requests, **none) + 1
    brew = {"route": "/v1/health/live", "method": "other", "status": "4xx"}
    assert _value(after, requests, **brew) == _value(before, requests, **brew) + 1
    static = {"route": "/static/complaints", "method": "GET", "status": "2xx"}
    assert _value(after, requests, **static) == _value(before, requests, **static) + 1
    # The scrapes themselves are counted too, and no path was made a label.
    assert _value(after, requests, route="/metrics", method="GET", status="2xx") >= 1
    # Labels only: a sample's value (a `_created` timestamp) may hold any digits, "4711" too.
    names = "\n".join(line.rsplit(" ", 1)[0] for line in text.splitlines()
                      if line and not line.startswith("#"))
    assert "00000000-0000-4000" not in names and "4711" not in names and "BREW" not in names
    assert "/v1/works/{work_id}" in names  # the labels were read


def test_a_source_that_fails_is_reported_not_fatal(settings, admin_key):
    def broken(_settings):
        raise RuntimeError("down")
        yield  # pragma: no cover

    metrics.gauge_source("test.broken", broken)
    try:
        with TestClient(create_app(settings)) as client:
            s = _scrape(client, admin_key)
        assert _value(s, "clipgate_metrics_source_up", source="test.broken") == 0
        assert _value(s, "clipgate_metrics_source_up", source="index") == 1
    finally:
        metrics.remove_gauge_source("test.broken")


def test_failed_notices_are_counted(settings):
    settings = settings.model_copy(update={"webhook_allow_private": True, "notify_retry_s": 0.0,
                                           "notify_max_attempts": 2})
    acc = make_account(settings, webhook_url=None)
    from tests.complaints.test_notify import _outbox

    _outbox(settings, acc, "webhook", f"http://127.0.0.1:{free_port()}/gone")
    before = _samples(metrics.render().decode())
    notify.send_due(settings)
    notify.send_due(settings)
    after = _samples(metrics.render().decode())
    name = "clipgate_notice_failures_total"
    for outcome in ("retry", "failed"):
        assert (_value(after, name, channel="webhook", outcome=outcome)
                == _value(before, name, channel="webhook", outcome=outcome) + 1)


def test_a_worker_without_a_multiprocess_dir_refuses_a_metrics_port(cli, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("CLIPGATE_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("CLIPGATE_WORKER_METRICS_PORT", "9")
    result = cli("worker")
    assert result.exit_code == 2
    assert "PROMETHEUS_MULTIPROC_DIR" in result.output


@pytest.mark.slow
def test_a_worker_serves_its_childrens_counts(broker_settings, tmp_path):
    """A real `clipgate worker` (prefork: a child process runs the tasks) serves, from its
    parent, what the child counted: the verdict and gate stages of a generated clip it gated, and
    a notice that failed (email is off). The task logs, as JSON, with the request id that was
    current where it was queued."""
    from clipgate import queue
    from generator import admission, tenants, worker
    from tests.complaints.test_notify import _outbox

    _outbox(broker_settings, make_account(broker_settings), "email", "holder@example.test")
    tenants.create_tenant("acme", tier="pro", credits_gpu_s=60, settings=broker_settings)
    job = admission.admit(tenant="acme", user="u", idempotency_key="k", prompt="slow clouds",
                          params={"seconds": 1.0, "width": 160, "height": 96, "fps": 8},
                          settings=broker_settings).job
    port = free_port()
    env = {**os.environ, "CLIPGATE_BROKER_URL": broker_settings.broker_url,
           "CLIPGATE_RESULT_BACKEND": broker_settings.result_backend,
           "CLIPGATE_WORKER_METRICS_PORT": str(port), "CLIPGATE_LOG_LEVEL": "WARNING",
           "CLIPGATE_LOG_FORMAT": "json",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from clipgate.cli import main; "
         "sys.argv[0] = 'clipgate'; main()", "worker", "--queues", "cpu,gpu"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "worker.log").open("wb"))
    wanted = ('clipgate_notice_failures_total{channel="email",outcome="retry"} 1.0',
              'clipgate_verdicts_total{policy="none",verdict="release"} 1.0',
              'clipgate_gate_stage_seconds_count{stage="search"} 1.0',
              'clipgate_gate_stage_seconds_count{stage="record"} 1.0')
    try:
        token = correlation_id.set("feedc0de" * 4)
        try:
            queue.send(notify.SEND_NOTIFICATIONS, [], broker_settings)
        finally:
            correlation_id.reset(token)
        assert worker.dispatch(str(job["id"]), broker_settings)
        deadline, text = time.monotonic() + 180, ""
        while (time.monotonic() < deadline and not all(w in text for w in wanted)
               and proc.poll() is None):
            time.sleep(1)
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5
                                              ).read().decode()
            except OSError:
                continue
        missing = [w for w in wanted if w not in text]
        assert not missing, (missing, proc.poll(), text[-3000:])
    finally:
        proc.terminate()
        proc.wait(60)
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()
             if line.startswith("{")]
    failed = [line for line in lines if line["logger"] == "complaints.notify"]
    assert failed and failed[0]["request_id"] == "feedc0de" * 4, lines[-5:]
