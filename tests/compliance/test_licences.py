"""Licences and tracked matches on real PostgreSQL and real media: a clip that copies a `block`
work is released for the tenant holding a licence (the manifest names it, the use is recorded),
blocked for any other tenant and once the licence is revoked; `track` releases and records;
bad input."""

from __future__ import annotations

import datetime as dt

import pytest

import compliance
import index
from clipgate.errors import BadInput, NotFound, Unprocessable
from compliance import Licensee, create_licence, generator_identity, release_clip, verify_clip
from compliance.signing import COMPLIANCE_LABEL
from tests.media import noise_frame, pan, photo, write_image, write_video

FPS = 12
ACME = Licensee(tenant_id="acme-tenant-id", tenant_name="acme")
OTHER = Licensee(tenant_id="other-tenant-id", tenant_name="globex")
IDENT = generator_identity(model="gen-1", version="1", prompt="an astronaut")


def _copy_clip(tmp_path, name: str = "copy.mp4"):
    img = photo("astronaut")
    frames = ([noise_frame(1 + i // 6) for i in range(FPS)]
              + [pan(img, i, 3 * FPS) for i in range(3 * FPS)])
    return write_video(tmp_path / name, frames, fps=FPS)


@pytest.fixture
def astronaut(settings, tmp_path):
    return index.register_work(
        write_image(tmp_path / "astronaut.jpg", photo("astronaut", (512, 512))),
        owner="NASA Archive", title="Astronaut portrait", policy="block", settings=settings)


def test_licensed_tenant_is_released_with_the_licence_named_others_blocked(
        settings, tmp_path, astronaut):
    lic = create_licence(tenant_id=ACME.tenant_id, tenant_name="acme",
                         work_id=str(astronaut["id"]), settings=settings)
    assert lic["state"] == "in_force" and lic["tenant"] == "acme"
    clip = _copy_clip(tmp_path)

    out = release_clip(clip, generator=IDENT, settings=settings, licensee=ACME)
    assert out.released, out.check.reasons
    assert out.check.decided_by == [{"work_id": str(astronaut["id"]),
                                     "title": "Astronaut portrait", "owner": "NASA Archive",
                                     "rule": "licence", "policy": "block",
                                     "licence_id": lic["licence_id"], "outcome": "release"}]
    assert f"licence {lic['licence_id']}" in out.check.reasons[0]
    signed = verify_clip(out.release["path"], settings=settings)
    assert signed["verified"]
    assertion = signed["assertions"][COMPLIANCE_LABEL]
    assert assertion["licences"] == [lic["licence_id"]]
    assert assertion["decided_by"][0]["rule"] == "licence"
    # The check, read back, says which rule decided it.
    check = compliance.get_check(out.check.check_id, settings=settings)
    assert check["decided_by"][0]["licence_id"] == lic["licence_id"]
    assert check["licensee"] == {"tenant_id": ACME.tenant_id, "tenant": "acme", "model": "gen-1"}
    # The use is reported to the rights holder, per model and tenant.
    assert compliance.tracked_counts([astronaut["id"]], settings=settings) == [
        {"work_id": str(astronaut["id"]), "rule": "licence", "licence_id": lic["licence_id"],
         "model": "gen-1", "tenant": "acme", "clips": 1,
         "last_at": compliance.tracked_counts([astronaut["id"]],
                                              settings=settings)[0]["last_at"]}]

    # The same clip for another tenant, or with no tenant at all (a plain API caller): blocked.
    for licensee in (OTHER, None):
        out = release_clip(clip, generator=IDENT, settings=settings, licensee=licensee)
        assert not out.released and out.check.verdict == "block"
        assert out.check.decided_by[0]["rule"] == "policy"

    # Revoked: the policy decides again, and the reasons say why.
    compliance.revoke_licence(lic["licence_id"], reason="agreement ended", settings=settings)
    out = release_clip(clip, generator=IDENT, settings=settings, licensee=ACME)
    assert out.check.verdict == "block"
    assert f"licence {lic['licence_id']} was revoked" in out.check.reasons[0]


def test_an_expired_licence_falls_back_to_the_policy(settings, tmp_path, astronaut):
    now = dt.datetime.now(dt.UTC)
    lic = create_licence(tenant_id=ACME.tenant_id, tenant_name="acme", owner="NASA Archive",
                         valid_from=now - dt.timedelta(days=30),
                         valid_until=now - dt.timedelta(days=1), settings=settings)
    assert lic["state"] == "expired" and lic["work_id"] is None
    out = release_clip(_copy_clip(tmp_path), generator=IDENT, settings=settings, licensee=ACME)
    assert out.check.verdict == "block"
    assert f"licence {lic['licence_id']} expired" in out.check.reasons[0]
    assert compliance.tracked_counts([astronaut["id"]], settings=settings) == []


def test_a_licence_revoked_between_check_and_record_is_not_relied_on(
        settings, tmp_path, astronaut, monkeypatch):
    """Fail closed: the release re-reads its licences in the recording transaction; one revoked
    after the check sends the clip back to the gate, which now blocks it."""
    lic = create_licence(tenant_id=ACME.tenant_id, tenant_name="acme",
                         work_id=str(astronaut["id"]), settings=settings)
    from compliance import release as release_module

    real_check = release_module.check_clip
    calls = []

    def check_then_revoke(*args, **kwargs):
        result = real_check(*args, **kwargs)
        if not calls:
            compliance.revoke_licence(lic["licence_id"], reason="ended", settings=settings)
        calls.append(result.verdict)
        return result

    monkeypatch.setattr(release_module, "check_clip", check_then_revoke)
    out = release_clip(_copy_clip(tmp_path), generator=IDENT, settings=settings, licensee=ACME)
    assert calls == ["release", "block"]
    assert not out.released and out.check.verdict == "block"


def test_track_releases_and_records_the_use(settings, tmp_path):
    work = index.register_work(
        write_image(tmp_path / "astronaut.jpg", photo("astronaut", (512, 512))),
        owner="NASA Archive", title="Astronaut portrait", policy="track", settings=settings)
    clip = _copy_clip(tmp_path)
    for licensee in (ACME, ACME, None):
        out = release_clip(clip, generator=IDENT, settings=settings, licensee=licensee)
        assert out.released, out.check.reasons
        assert out.check.decided_by[0]["policy"] == "track"
    counts = {(r["tenant"], r["rule"]): r["clips"]
              for r in compliance.tracked_counts([work["id"]], settings=settings)}
    assert counts == {("acme", "track"): 2, (None, "track"): 1}


def test_allow_releases_without_recording(settings, tmp_path):
    work = index.register_work(
        write_image(tmp_path / "astronaut.jpg", photo("astronaut", (512, 512))),
        owner="NASA Archive", title="Astronaut portrait", policy="allow", settings=settings)
    out = release_clip(_copy_clip(tmp_path), generator=IDENT, settings=settings)
    assert out.released and out.check.decided_by[0]["policy"] == "allow"
    assert compliance.tracked_counts([work["id"]], settings=settings) == []


def test_bad_licences(settings, astronaut):
    with pytest.raises(NotFound, match="no work with id"):
        create_licence(tenant_id="t", tenant_name="t",
                       work_id="00000000-0000-4000-8000-000000000000", settings=settings)
    with pytest.raises(NotFound):
        create_licence(tenant_id="t", tenant_name="t", work_id="not-a-uuid", settings=settings)
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(Unprocessable, match="ends .* before it starts"):
        create_licence(tenant_id="t", tenant_name="t", work_id=str(astronaut["id"]),
                       valid_from=now, valid_until=now - dt.timedelta(hours=1),
                       settings=settings)
    with pytest.raises(BadInput, match="not both or neither"):
        create_licence(tenant_id="t", tenant_name="t", work_id=str(astronaut["id"]),
                       owner="NASA Archive", settings=settings)
    with pytest.raises(BadInput, match="not both or neither"):
        create_licence(tenant_id="t", tenant_name="t", settings=settings)
    with pytest.raises(NotFound):
        compliance.revoke_licence("00000000-0000-4000-8000-000000000000", reason="x",
                                  settings=settings)
    assert compliance.list_licences(settings=settings) == []
