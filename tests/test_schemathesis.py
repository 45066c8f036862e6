"""Schemathesis over the live OpenAPI document, as each role: an admin, a generator, a rights
holder and a reviewer key call every operation with generated input (valid and invalid). No
answer may be a 5xx, or differ from what the document says (status, content type, body schema).

A bounded number of examples per operation (SCHEMATHESIS_EXAMPLES, default 6) keeps it to a few
minutes here; raise it by hand for a longer run. NUL bytes in text are left out of generation
by default (SCHEMATHESIS_ALLOW_X00=1 tries them)."""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import hypothesis  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from clipgate import apikeys  # noqa: E402
from clipgate.app import create_app  # noqa: E402
from clipgate.settings import Settings  # noqa: E402
from tests.conftest import reset_database  # noqa: E402
from complaints import accounts  # noqa: E402

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# SCHEMATHESIS_ALLOW_X00=1 sends NUL bytes too (once issue 15's edge validation is in).
CONFIG = {"seed": 15, "generation": {"max-examples": EXAMPLES,
                                     "allow-x00": os.environ.get("SCHEMATHESIS_ALLOW_X00") == "1"},
          "suppress-health-check": ["all"]}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, database_url):
    """One app, database and set of keys for the whole run (operations leave data for the
    next, as clients would): (the schema, each role's key)."""
    reset_database(database_url)
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("fuzz") / "data",
                        database_url=database_url, broker_url=None)
    keys = {"admin": apikeys.create_key("st-admin", "admin", settings)[1],
            "generator": apikeys.create_key("st-gen", "generator", settings)[1]}
    for role in ("rights_holder", "reviewer"):
        person = accounts.create_account(f"{role}@example.org", "a long enough passphrase",
                                         role.title(), role, settings=settings)
        keys[role] = apikeys.create_key(f"st-{role}", role, settings,
                                        account_id=str(person["id"]))[1]
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings),
                                            config=SchemathesisConfig.from_dict(CONFIG))
    return schema, keys


def _operations() -> list:
    # The document needs no database: build it once, at collection, from a bare app.
    bare = create_app(Settings(_env_file=None, database_url="postgresql://x@127.0.0.1:1/x",
                               broker_url=None))
    return [pytest.param(path, method.upper(), id=f"{method.upper()} {path}")
            for path, ops in bare.openapi()["paths"].items() for method in ops]


@pytest.mark.parametrize(("path", "method"), _operations())
def test_every_operation_as_every_role(fuzzed, path, method):
    schema, keys = fuzzed
    operation = schema[path][method]
    modes = [operation.as_strategy(generation_mode=m) for m in GenerationMode]

    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         derandomize=True, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=st.one_of(modes))
    def run(case) -> None:
        for key in keys.values():
            # Health loads every model: slow on a loaded machine, so a generous timeout.
            case.call_and_validate(headers={"X-API-Key": key}, checks=CHECKS, timeout=120)

    run()
