"""The media fuzz suite (issue 15): mutated and odd files through check, works add and verify.

CI runs a fixed seed with a few hundred cases; `pytest tests/fuzz --long` runs 1,200, and
`--fuzz-cases N --fuzz-seed S` any other count. Every answer must be a 2xx or a 4xx with a
message (the CLI: 0/1 or exit 2), with no traceback, no hang, and nothing written when refused.
"""

from __future__ import annotations

import pytest

from clipgate import apikeys
from clipgate.app import create_app
from tests.fuzz.harness import Fuzzer, cases
from tests.fuzz.seeds import media_seeds, odd_seeds, signed_seed
from tests.media import photo, write_image

CI_CASES = 250
LONG_CASES = 1200


# Cases of the long run (seed 20261202) that found bugs: a stream with no decoder (500), container
# metadata that is not UTF-8 (CLI exit 1), and an unnamed match failing the typed answer (500).
REGRESSIONS = [457, 480, 971]


@pytest.mark.slow
def test_mutated_media_never_breaks_the_service(settings, cli, tmp_path, request):
    n = request.config.getoption("--fuzz-cases") or (
        LONG_CASES if request.config.getoption("--long") else CI_CASES)
    _fuzz(settings, cli, tmp_path, n, request.config.getoption("--fuzz-seed"))


def test_cases_that_once_failed(settings, cli, tmp_path):
    _fuzz(settings, cli, tmp_path, max(REGRESSIONS) + 1, 20261202, only=set(REGRESSIONS),
          cli_every=1)


def _fuzz(settings, cli, tmp_path, n: int, seed: int, only: set[int] | None = None,
          cli_every: int = 5) -> None:
    from fastapi.testclient import TestClient

    admin = apikeys.create_key("fuzz admin", role="admin", settings=settings)[1]
    generator = apikeys.create_key("fuzz generator", settings=settings)[1]
    with TestClient(create_app(settings)) as client:
        # A protected work, so checks run the whole matcher rather than an empty index.
        work = write_image(tmp_path / "work.jpg", photo("astronaut", (320, 320)))
        r = client.post("/v1/works", headers={"X-API-Key": admin},
                        files={"file": ("work.jpg", work.read_bytes(), "image/jpeg")},
                        data={"owner": "NASA", "title": "Astronaut", "policy": "block"})
        assert r.status_code == 201, r.text

        def release(path):
            r = client.post("/v1/releases", headers={"X-API-Key": generator},
                            files={"file": (path.name, path.read_bytes(), "video/mp4")},
                            data={"model": "fuzz-model"})
            assert r.status_code == 201, r.text
            return client.get(r.json()["download_url"], headers={"X-API-Key": generator}).content

        seeds = media_seeds() + [signed_seed(release, tmp_path)]
        odd = odd_seeds()
        work_dir = tmp_path / "cases"
        work_dir.mkdir()
        fuzzer = Fuzzer(client=client, admin_key=admin, generator_key=generator, cli=cli,
                        database_url=settings.database_url, data_dir=settings.data_dir,
                        tmp=work_dir, cli_every=cli_every)
        report = fuzzer.run(cases(seeds, odd, n, seed, only))
    print("\n" + report.summary())
    assert report.cases == (len(only) if only is not None else n)
    if only is None:
        # Both refusals and acceptances happened, so the suite exercises both paths.
        codes = {code for (target, code) in report.answers if target == "api check"}
        assert 200 in codes and 400 in codes, report.summary()
    if report.failures:
        pytest.fail("\n" + report.summary(), pytrace=False)
