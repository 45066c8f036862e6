"""The OpenAPI document says what the routes send: every JSON route names a response model (no
bare "object"), the errors it documents carry ErrorOut, and a 422 is published as it is sent."""

from __future__ import annotations

from fastapi.testclient import TestClient

from clipgate import apikeys
from clipgate.app import create_app

JSON = "application/json"


def test_every_json_route_names_its_model_and_422_is_published_as_sent(settings):
    key = apikeys.create_key("ops", "admin", settings)[1]
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as api:
        doc = api.get("/openapi.json").json()
        sent = api.get("/v1/keys", params={"limit": 0})
    untyped = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for code, answer in op["responses"].items():
                schema = (answer.get("content") or {}).get(JSON, {}).get("schema")
                if schema is None:
                    continue
                if "$ref" not in schema:
                    untyped.append(f"{method.upper()} {path} {code}")
    assert untyped == []
    shape = doc["components"]["schemas"]["HTTPValidationError"]
    assert sent.status_code == 422
    body = sent.json()
    assert set(body) <= set(shape["properties"]) and set(shape["required"]) <= set(body)
    assert shape["properties"]["detail"]["type"] == "string" and isinstance(body["detail"], str)
    assert isinstance(body["errors"], list) and body["errors"][0]["loc"] == ["query", "limit"]
    # Each route behind a key documents 401 and 403 as ErrorOut.
    op = doc["paths"]["/v1/checks"]["post"]["responses"]
    assert op["401"]["content"][JSON]["schema"]["$ref"].endswith("/ErrorOut")
    assert "format" in str(doc["components"]["schemas"]["Body_check_route_v1_checks_post"])
