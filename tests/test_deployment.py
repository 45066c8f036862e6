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
