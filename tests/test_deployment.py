"""docker-compose.yml describes the real deployment (no Docker engine here, so it is parsed)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_has_every_part_of_the_deployment():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu"} <= set(services)
    assert services["migrate"]["command"] == ["migrate"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("api", "worker-cpu", "worker-gpu"):
        env = services[name]["environment"]
        assert env["CLIPGATE_DATABASE_URL"].startswith("postgresql://")
        assert env["CLIPGATE_BROKER_URL"].startswith("redis://")
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "gpu" in gpu["command"][gpu["command"].index("--queues") + 1]
    assert gpu["environment"]["CLIPGATE_CLIP_DEVICE"] == "cuda"


def test_dockerfile_runs_the_clipgate_command():
    text = (ROOT / "Dockerfile").read_text()
    assert "torch==2.14.1" in text and 'ENTRYPOINT ["clipgate"]' in text
