"""The first keys of a deployment: the generator's and the operator's, configured or made once."""

from __future__ import annotations

from fastapi.testclient import TestClient

from clipgate import apikeys
from clipgate.app import create_app

GEN = "cg_bootstrap-key-for-the-generator-service"
ADMIN = "cg_bootstrap-key-for-the-operator-of-this-site"


def _roles(settings) -> dict[str, str]:
    return {k["name"]: k["role"] for k in apikeys.list_keys(settings)}


def test_with_only_the_generator_key_configured_an_admin_key_is_made_once(settings):
    """CLIPGATE_API_KEY alone used to leave a deployment with no operator at all."""
    s = settings.model_copy(update={"api_key": GEN})
    made = apikeys.first_start_keys(s)
    assert [role for role, _ in made] == ["admin"]
    [(_, admin)] = made
    with TestClient(create_app(s), headers={"X-API-Key": admin}) as c:
        assert c.get("/v1/works").status_code == 200  # an operator's route
    assert apikeys.first_start_keys(s) == []  # the next start makes none
    assert _roles(s) == {"local-operator": "admin", "bootstrap": "generator"}


def test_a_configured_admin_key_is_stored_and_none_is_made(settings):
    s = settings.model_copy(update={"api_key": GEN, "admin_key": ADMIN})
    assert apikeys.first_start_keys(s) == []
    with TestClient(create_app(s), headers={"X-API-Key": ADMIN}) as c:
        assert c.get("/v1/works").status_code == 200
    assert _roles(s) == {"bootstrap": "generator", "bootstrap-admin": "admin"}


def test_the_same_key_for_both_roles_is_not_made_an_admin(settings):
    s = settings.model_copy(update={"api_key": GEN, "admin_key": GEN})
    apikeys.ensure_bootstrap_key(s)
    assert _roles(s) == {"bootstrap": "generator"}


def test_nothing_configured_makes_one_of_each(settings):
    made = dict(apikeys.first_start_keys(settings))
    assert set(made) == {"generator", "admin"}
    assert apikeys.first_start_keys(settings) == []


def test_a_revoked_admin_key_is_not_replaced_behind_the_operators_back(settings):
    record, _ = apikeys.create_key("ops", role="admin", settings=settings)
    apikeys.revoke_key(str(record["id"]), settings)
    s = settings.model_copy(update={"api_key": GEN})
    assert apikeys.first_start_keys(s) == []


def test_beat_needs_a_broker(cli):
    result = cli("beat")
    assert result.exit_code == 2 and "CLIPGATE_BROKER_URL" in result.output
