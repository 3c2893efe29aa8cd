"""The OpenAPI document describes what the API answers, errors included."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

ERRORS = {"401", "403", "404", "409", "413", "422", "503"}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    out: dict[str, Any] = r.json()
    return out


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


async def test_every_authenticated_operation_documents_its_error_answers(
    document: dict[str, Any],
) -> None:
    body = {"$ref": "#/components/schemas/ErrorBody"}
    for method, path, operation in _operations(document):
        if path in ("/api/health", "/api/version"):
            assert not ERRORS & set(operation["responses"]), path
            continue
        responses = operation["responses"]
        assert set(responses) >= ERRORS, f"{method} {path}"
        for status in ERRORS:
            assert responses[status]["content"]["application/json"]["schema"] == body
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_a_bad_input_answer_matches_its_documented_body(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    r = await client.post("/work-pools", json={"name": "p", "concurrency_limit": "lots"})
    assert r.status_code == 422
    schema = {"$ref": "#/components/schemas/ErrorBody", "components": document["components"]}
    jsonschema.validate(r.json(), schema)
    assert r.json()["errors"][0]["field"] == "concurrency_limit"


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("put", "/api/variables/{name}", "Variable"),
        ("put", "/api/secrets/{name}", "SecretInfo"),
        ("put", "/api/results/{key}", "ResultInfo"),
        ("post", "/api/deployments/{deployment_id}/runs", "FlowRun"),
    ],
)
async def test_create_or_replace_operations_document_both_answers(
    document: dict[str, Any], method: str, path: str, model: str
) -> None:
    """Created (201) or an existing one replaced or returned (200): both are documented."""
    responses = document["paths"][path][method]["responses"]
    for status in ("200", "201"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, (status, schema)
