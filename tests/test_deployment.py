"""docker-compose.yml describes the real deployment (no Docker engine here, so it is parsed)."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_compose_milvus_profile_runs_standalone_milvus_for_the_vector_backend():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    milvus = {n: s for n, s in services.items() if s.get("profiles") == ["milvus"]}
    assert set(milvus) == {"milvus", "milvus-etcd", "milvus-minio"}
    assert milvus["milvus"]["image"].startswith("milvusdb/milvus:")
    assert milvus["milvus"]["command"] == ["milvus", "run", "standalone"]
    assert set(milvus["milvus"]["depends_on"]) == {"milvus-etcd", "milvus-minio"}
    env = milvus["milvus"]["environment"]
    assert env["ETCD_ENDPOINTS"] == "milvus-etcd:2379" and env["MINIO_ADDRESS"] == "milvus-minio:9000"
    api = services["api"]["environment"]
    assert api["CLIPGATE_VECTOR_BACKEND"].startswith("${CLIPGATE_VECTOR_BACKEND:-faiss")
    assert "milvus:19530" in api["CLIPGATE_MILVUS_URI"]


def test_dockerfile_runs_the_clipgate_command():
    text = (ROOT / "Dockerfile").read_text()
    assert "torch==2.14.1" in text and 'ENTRYPOINT ["clipgate"]' in text


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_one_beat_for_the_periodic_tasks():
    services = _compose()["services"]
    assert services["beat"]["command"] == ["beat"]
    assert services["beat"]["environment"]["CLIPGATE_BROKER_URL"].startswith("redis://")
    assert "deploy" not in services["beat"]  # one beat, never scaled
    # No worker runs an embedded beat too (the tasks would be queued twice).
    assert not any("--beat" in (s.get("command") or []) for s in services.values())


def test_compose_workers_have_health_checks_and_metrics():
    services = _compose()["services"]
    for name in ("worker-cpu", "worker-gpu"):
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD-SHELL"
        assert "inspect ping --destination celery@$$HOSTNAME" in check["test"][1]
        env = services[name]["environment"]
        assert env["PROMETHEUS_MULTIPROC_DIR"] and int(env["CLIPGATE_WORKER_METRICS_PORT"]) > 0
        assert "ports" not in services[name]  # the open metrics port stays internal
    assert services["api"]["environment"]["CLIPGATE_LOG_FORMAT"].startswith("${CLIPGATE_LOG_FORMAT")


def test_compose_bootstraps_an_admin_key():
    services = _compose()["services"]
    assert services["api"]["environment"]["CLIPGATE_ADMIN_KEY"] == "${CLIPGATE_ADMIN_KEY:-}"
    one_shot = services["admin-key"]
    assert one_shot["command"] == ["keys", "create", "operator", "--role", "admin"]
    assert one_shot["profiles"] == ["tools"] and one_shot["restart"] == "no"


def test_the_cpu_image_installs_torchs_cpu_build():
    services = _compose()["services"]
    for name in ("api", "worker-cpu", "beat", "migrate"):
        assert services[name]["build"]["args"]["TORCH"] == "cpu"
    assert services["worker-gpu"]["build"]["args"]["TORCH"] == "cuda"
    assert services["api"]["image"] != services["worker-gpu"]["image"]
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG TORCH=cpu" in text
    assert 'cpu) pip install --no-cache-dir --index-url "$TORCH_CPU_INDEX" torch==2.14.1' in text
    # Every package the command imports is in the image.
    for package in ("clipgate", "index", "compliance", "complaints", "generator", "bench"):
        assert f"COPY {package} ./{package}" in text


@pytest.mark.slow
def test_the_worker_health_check_pings_a_real_worker(broker_settings, tmp_path):
    """The compose health check's own command, run against a real `clipgate worker`: it fails
    before the worker is up, and passes once it answers."""
    import os
    import socket
    import subprocess
    import sys
    import time

    command = _compose()["services"]["worker-cpu"]["healthcheck"]["test"][1].replace("$$", "$")
    command = command.replace("celery ", f"{Path(sys.executable).parent}/celery ", 1)
    env = {**os.environ, "CLIPGATE_BROKER_URL": broker_settings.broker_url,
           "CLIPGATE_RESULT_BACKEND": broker_settings.result_backend,
           "HOSTNAME": socket.gethostname(), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}

    def healthy() -> bool:
        return subprocess.run(["sh", "-c", command], env=env, timeout=120).returncode == 0

    assert not healthy()
    worker = subprocess.Popen(
        [sys.executable, "-c", "import sys; from clipgate.cli import main; "
         "sys.argv[0] = 'clipgate'; main()", "worker", "--queues", "cpu"],
        env={**env, "CLIPGATE_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not healthy():
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(2)
    finally:
        worker.terminate()
        worker.wait(60)
