"""The server's own ``/openapi.json`` says what the server does: the statuses each
operation answers with the error envelope (no FastAPI 422), event streams, bearer
auth, the ``OpenAI-Beta`` header, OpenAI's operation ids, OpenAI's response schemas
(with the deviations it declares); and a 405's ``Allow`` names every method of the
path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import openai
import pytest

from tests.support.runs import http
from tests.support.spec_schema import served_schemas

OPENAI_SUBSET = Path(__file__).parents[1] / "fuzz" / "openai-assistants.json"
FILE_ANSWERS = {
    "listFiles": "ListFilesResponse",
    "createFile": "OpenAIFile",
    "retrieveFile": "OpenAIFile",
    "deleteFile": "DeleteFileResponse",
    "createUpload": "Upload",
    "addUploadPart": "UploadPart",
    "completeUpload": "Upload",
    "cancelUpload": "Upload",
}

OPENAI_OPERATIONS = 48  # the Assistants v2, Files, Uploads and vector store operations served


@pytest.fixture
def document(client: openai.OpenAI) -> dict[str, Any]:
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    doc: dict[str, Any] = httpx.get(f"{root}/openapi.json").json()
    return doc


def _operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (method, path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def test_every_operation_documents_its_errors(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) == OPENAI_OPERATIONS + 2  # and threadline's own: resumeRunEvents,
    assert "listThreads" in operations  # and listing threads
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for name, (method, path, op) in operations.items():
        statuses = set(op["responses"])
        assert "422" not in statuses, name
        expected = {"200", "400", "401", "500"}
        if "{" in path or name == "createThreadAndRun":
            expected.add("404")
        if method == "post" and name not in (
            "cancelRun",
            "cancelVectorStoreFileBatch",
            "cancelUpload",
        ):
            expected.add("413")
        assert statuses == expected, name
        for status in statuses - {"200"}:
            assert op["responses"][status] == {"$ref": f"#/components/responses/{status}"}
    for status, response in document["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, status


def test_the_error_schema_is_what_the_server_sends(
    client: openai.OpenAI, document: dict[str, Any]
) -> None:
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/ErrorResponse", "components": document["components"]}
    )
    for response in (
        http(client).get("/assistants/asst_nope"),
        http(client).get("/assistants", params={"limit": 0}),
        http(client).post("/threads", content=b"{"),
        httpx.get(f"{client.base_url}assistants"),
    ):
        assert response.status_code in (400, 401, 404)
        body = response.json()
        assert validator.is_valid(body), body


def test_every_answer_has_openais_schema(document: dict[str, Any]) -> None:
    """Each operation's 200 is the component OpenAI's spec gives it, and each component
    is OpenAI's, but for what ``api.openapi.DEVIATIONS`` declares."""
    subset = json.loads(OPENAI_SUBSET.read_text())
    expected = dict(FILE_ANSWERS)
    for operations in subset["paths"].values():
        for op in operations.values():
            ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            expected[op["operationId"]] = ref.rsplit("/", 1)[1]
    assert len(expected) == OPENAI_OPERATIONS - 1  # downloadFile answers bytes
    operations = _operations(document)
    for name, component in expected.items():
        content = operations[name][2]["responses"]["200"]["content"]
        assert content["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{component}"
        }, name
    components = document["components"]["schemas"]
    shared = set(components) & set(served_schemas())
    assert set(expected.values()) <= shared
    for name in sorted(shared):
        assert components[name] == served_schemas()[name], name
    declared = [
        (name, key)
        for name in shared
        for key, schema in components[name].get("properties", {}).items()
        if "x-threadline-deviation" in schema
    ]
    assert ("VectorStoreObject", "expires_after") in declared
    assert ("ListRunsResponse", "first_id") in declared
    assert "Run" not in components  # the wire models of answers are not in the document


def test_streams_auth_and_headers(document: dict[str, Any]) -> None:
    operations = _operations(document)
    for name in ("createRun", "createThreadAndRun", "submitToolOuputsToRun"):
        content = operations[name][2]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}, name
    events = operations["resumeRunEvents"][2]["responses"]["200"]["content"]
    assert set(events) == {"text/event-stream"}
    download = operations["downloadFile"][2]["responses"]["200"]["content"]
    assert set(download) == {"application/octet-stream"}

    assert document["components"]["securitySchemes"] == {
        "ApiKeyAuth": {"type": "http", "scheme": "bearer"}
    }
    assert document["security"] == [{"ApiKeyAuth": []}]
    for name, (_, path, op) in operations.items():
        headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
        assert "authorization" not in {h.lower() for h in headers}, name
        assert ("OpenAI-Beta" in headers) is not path.startswith(("/v1/files", "/v1/uploads")), name


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/assistants/asst_x", "DELETE, GET, POST"),
        ("PUT", "/assistants", "GET, POST"),
        ("OPTIONS", "/files/file-x", "DELETE, GET"),
        ("PATCH", "/threads/thread_x/runs/run_x", "GET, POST"),
    ],
)
def test_a_405_allows_every_method_of_the_path(
    client: openai.OpenAI, method: str, path: str, allow: str
) -> None:
    response = http(client).request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["type"] == "invalid_request_error"
