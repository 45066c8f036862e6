"""Stop Redis (the broker) while generation jobs are submitted: each submission is refused with a
503 and leaves no job behind (fail closed), or is accepted and completes once Redis is back,
even though Redis came back empty (no persistence: the messages it held are gone). None is lost
silently."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clipgate import apikeys, db
from clipgate.app import create_app
from generator import jobs, tenants
from tests.faults.conftest import wait_for
from tests.faults.test_killed_workers import DONE_WITHIN_S, assert_released_signed

pytestmark = pytest.mark.slow

PER_PHASE = 3


def test_generation_submissions_survive_a_broker_outage(fault_settings, workers,
                                                         private_redis):
    s = fault_settings
    key = apikeys.create_key("generator", "generator", s)[1]
    for phase in ("before", "down", "after"):  # a tenant each: a tier caps jobs in progress
        tenants.create_tenant(phase, tier="pro", credits_gpu_s=600, settings=s)
    workers.start("w", beat=True)
    answers: dict[str, tuple[int, dict]] = {}
    with TestClient(create_app(s), headers={"X-API-Key": key}) as api:

        def submit(phase: str, i: int) -> None:
            idem = f"{phase}-{i}"
            r = api.post("/v1/generations", json={
                "tenant": phase, "user": "u", "idempotency_key": idem,
                "prompt": f"a quiet harbour at dawn, take {idem}", "seconds": 1.0,
                "width": 320, "height": 180, "fps": 12})
            answers[idem] = (r.status_code, r.json())

        for i in range(PER_PHASE):
            submit("before", i)
        private_redis.stop()  # every message waiting in it is lost with it
        for i in range(PER_PHASE):
            submit("down", i)
        private_redis.start()
        for i in range(PER_PHASE):
            submit("after", i)

    counts = {"accepted": 0, "refused": 0}
    for idem, (status, body) in answers.items():
        if status == 503:
            counts["refused"] += 1
            assert "unreachable" in body["detail"], body
            with db.connection(s) as conn:  # nothing half-admitted
                assert conn.execute("SELECT count(*) AS n FROM generation_jobs WHERE "
                                    "idempotency_key = %s", (idem,)).fetchone()["n"] == 0
        else:
            assert status == 202, (idem, status, body)
            counts["accepted"] += 1
    print("submissions:", counts)
    assert all(answers[f"down-{i}"][0] == 503 for i in range(PER_PHASE))  # fail closed
    assert all(answers[f"after-{i}"][0] == 202 for i in range(PER_PHASE))  # back at once

    accepted = [body["id"] for status, body in answers.values() if status == 202]

    def all_done() -> list[dict] | None:
        done = [jobs.get_job(j, settings=s) for j in accepted]
        return done if all(d["state"] in jobs.TERMINAL for d in done) else None

    done = wait_for(all_done, timeout=DONE_WITHIN_S + 60, what="every accepted job to finish",
                    every=0.5)
    for job in done:
        assert job["state"] == "released", (job["id"], job["state"], job["error"])
        assert_released_signed(s, job["release_id"])
