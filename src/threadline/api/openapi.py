"""The server's own OpenAPI document (``/openapi.json``), made to say what the
server does: OpenAI's operation ids, bearer auth, the ``OpenAI-Beta`` header,
every status an operation answers with OpenAI's error envelope (never FastAPI's
``422``, which the server does not send), ``text/event-stream`` for streams, and
for each of OpenAI's operations the response schema OpenAI's spec gives it
(``schemas/openai_responses.py``), with the few differences in ``DEVIATIONS``.

FastAPI builds the document from the routes (the request bodies come from the
wire models); ``document`` rewrites what it cannot know."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from threadline.schemas import openai_responses

PREFIX = "/v1"
OPERATION_IDS = {
    ("get", "/assistants"): "listAssistants",
    ("post", "/assistants"): "createAssistant",
    ("get", "/assistants/{assistant_id}"): "getAssistant",
    ("post", "/assistants/{assistant_id}"): "modifyAssistant",
    ("delete", "/assistants/{assistant_id}"): "deleteAssistant",
    ("post", "/threads"): "createThread",
    ("get", "/threads"): "listThreads",  # threadline's own: OpenAI cannot list threads
    ("post", "/threads/runs"): "createThreadAndRun",
    ("get", "/threads/{thread_id}"): "getThread",
    ("post", "/threads/{thread_id}"): "modifyThread",
    ("delete", "/threads/{thread_id}"): "deleteThread",
    ("get", "/threads/{thread_id}/messages"): "listMessages",
    ("post", "/threads/{thread_id}/messages"): "createMessage",
    ("get", "/threads/{thread_id}/messages/{message_id}"): "getMessage",
    ("post", "/threads/{thread_id}/messages/{message_id}"): "modifyMessage",
    ("delete", "/threads/{thread_id}/messages/{message_id}"): "deleteMessage",
    ("get", "/threads/{thread_id}/runs"): "listRuns",
    ("post", "/threads/{thread_id}/runs"): "createRun",
    ("get", "/threads/{thread_id}/runs/{run_id}"): "getRun",
    ("post", "/threads/{thread_id}/runs/{run_id}"): "modifyRun",
    ("post", "/threads/{thread_id}/runs/{run_id}/cancel"): "cancelRun",
    ("post", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs"): "submitToolOuputsToRun",
    ("get", "/threads/{thread_id}/runs/{run_id}/events"): "resumeRunEvents",
    ("get", "/threads/{thread_id}/runs/{run_id}/steps"): "listRunSteps",
    ("get", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}"): "getRunStep",
    ("get", "/files"): "listFiles",
    ("post", "/files"): "createFile",
    ("delete", "/files/{file_id}"): "deleteFile",
    ("get", "/files/{file_id}"): "retrieveFile",
    ("get", "/files/{file_id}/content"): "downloadFile",
    ("post", "/uploads"): "createUpload",
    ("post", "/uploads/{upload_id}/parts"): "addUploadPart",
    ("post", "/uploads/{upload_id}/complete"): "completeUpload",
    ("post", "/uploads/{upload_id}/cancel"): "cancelUpload",
    ("get", "/vector_stores"): "listVectorStores",
    ("post", "/vector_stores"): "createVectorStore",
    ("get", "/vector_stores/{vector_store_id}"): "getVectorStore",
    ("post", "/vector_stores/{vector_store_id}"): "modifyVectorStore",
    ("delete", "/vector_stores/{vector_store_id}"): "deleteVectorStore",
    ("post", "/vector_stores/{vector_store_id}/file_batches"): "createVectorStoreFileBatch",
    ("get", "/vector_stores/{vector_store_id}/file_batches/{batch_id}"): "getVectorStoreFileBatch",
    (
        "post",
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
    ): "cancelVectorStoreFileBatch",
    (
        "get",
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
    ): "listFilesInVectorStoreBatch",
    ("get", "/vector_stores/{vector_store_id}/files"): "listVectorStoreFiles",
    ("post", "/vector_stores/{vector_store_id}/files"): "createVectorStoreFile",
    ("get", "/vector_stores/{vector_store_id}/files/{file_id}"): "getVectorStoreFile",
    ("delete", "/vector_stores/{vector_store_id}/files/{file_id}"): "deleteVectorStoreFile",
    (
        "post",
        "/vector_stores/{vector_store_id}/files/{file_id}",
    ): "updateVectorStoreFileAttributes",
    (
        "get",
        "/vector_stores/{vector_store_id}/files/{file_id}/content",
    ): "retrieveVectorStoreFileContent",
    ("post", "/vector_stores/{vector_store_id}/search"): "searchVectorStore",
}
"""OpenAI's ``operationId`` for each operation (its spelling, typo included), so a
client generated from this document has the names of one generated from OpenAI's."""

STREAMING = {"createThreadAndRun", "createRun", "submitToolOuputsToRun"}
"""Operations that answer a stream when the body says ``"stream": true``."""

ERRORS = {
    "400": "Invalid request: a parameter, the body (not JSON, not UTF-8, wrong "
    "field), or a state that does not allow it (a run already active on the thread).",
    "401": "No API key, or one that is not valid.",
    "404": "No such object in the caller's project.",
    "413": "The request body (or the upload) is over the server's limit.",
    "500": "The server had an error.",
}

_REF = "#/components/schemas/"

_LISTS = (
    "ListAssistantsResponse",
    "ListMessagesResponse",
    "ListRunsResponse",
    "ListRunStepsResponse",
    "ListFilesResponse",
    "ListVectorStoresResponse",
    "ListVectorStoreFilesResponse",
)
_EMPTY_LIST = (
    "An empty list's `first_id` and `last_id` are `null`: what OpenAI's service sent "
    "and its SDKs type as optional, though its spec says string."
)
_UNSET = (
    "`null` when not set: OpenAI's SDKs read it as optional, though the spec's type has no null."
)
_NULL = {"type": "null"}
DEVIATIONS: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    **{(name, key): (_NULL, _EMPTY_LIST) for name in _LISTS for key in ("first_id", "last_id")},
    ("OpenAIFile", "expires_at"): (_NULL, _UNSET),
    ("OpenAIFile", "status_details"): (_NULL, _UNSET),
    ("OpenAIFile", "purpose"): (
        {"type": "string", "enum": ["evals"]},
        "The spec lets a file be uploaded for `evals` (`createFile`) but its File object "
        "does not list that purpose; the file reports the purpose it was uploaded with.",
    ),
    ("VectorStoreObject", "name"): (
        _NULL,
        "A store created without a name (`name` is optional on create) has none: `null`.",
    ),
    ("VectorStoreObject", "expires_after"): (_NULL, _UNSET),
}
"""Where the server's answers differ from OpenAI's spec: for (schema, property), the
other value the server may send, and why. The document says so
(``x-threadline-deviation``)."""


_SCHEMAS: dict[str, Any] = {
    "ServerSentEvent": {
        "type": "object",
        "description": "One event of a run's stream (OpenAI's `AssistantStreamEvent`): "
        "`data` is the JSON of the object the event names; the stream ends with "
        "`event: done` / `data: [DONE]` when the run pauses or ends.",
        "required": ["event", "data"],
        "properties": {
            "id": {"type": "string", "description": "The event's sequence number in the run."},
            "event": {"type": "string"},
            "data": {"type": "string"},
        },
    },
}

_EVENT_STREAM = {"schema": {"$ref": "#/components/schemas/ServerSentEvent"}}

_OPENAI_BETA = {
    "name": "OpenAI-Beta",
    "in": "header",
    "required": False,
    "description": "`assistants=v2`, as OpenAI's SDKs send it; accepted and not required.",
    "schema": {"type": "string", "example": "assistants=v2"},
}


def install(app: FastAPI) -> None:
    """Serve ``document(app)`` as the app's OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(_SCHEMAS)
    for name, schema in _openai_schemas().items():
        if name in schemas:  # a wire model named as one of OpenAI's: two meanings
            raise RuntimeError(f"the document has two schemas named {name}")
        schemas[name] = schema
    components["responses"] = {
        status: {
            "description": text,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        }
        for status, text in ERRORS.items()
    }
    components["securitySchemes"] = {"ApiKeyAuth": {"type": "http", "scheme": "bearer"}}
    doc["security"] = [{"ApiKeyAuth": []}]
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            _operation(path.removeprefix(PREFIX), method, operation)
    _prune(doc)
    return doc


def _openai_schemas() -> dict[str, Any]:
    """OpenAI's schemas for its operations' answers, with ``DEVIATIONS`` applied."""
    return with_deviations(openai_responses.schemas())


def with_deviations(schemas: dict[str, Any]) -> dict[str, Any]:
    """A copy of OpenAI's ``schemas`` that also allows what ``DEVIATIONS`` lists."""
    patched = copy.deepcopy(schemas)
    for (name, key), (other, reason) in DEVIATIONS.items():
        properties = patched[name]["properties"]
        properties[key] = {
            "anyOf": [properties[key], copy.deepcopy(other)],
            "x-threadline-deviation": reason,
        }
    return patched


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = {ref.removeprefix(_REF)} if isinstance(ref, str) and ref.startswith(_REF) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


def _prune(doc: dict[str, Any]) -> None:
    """Drop the schemas no operation reaches (the wire models of the answers that
    OpenAI's schemas replaced)."""
    schemas: dict[str, Any] = doc["components"]["schemas"]
    reached: set[str] = set()
    pending = _refs(doc["paths"]) | _refs(doc["components"].get("responses", {}))
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending |= _refs(schemas[name]) - reached
    doc["components"]["schemas"] = {k: v for k, v in sorted(schemas.items()) if k in reached}


def _operation(path: str, method: str, operation: dict[str, Any]) -> None:
    operation_id = OPERATION_IDS.get((method, path))
    if operation_id is not None:
        operation["operationId"] = operation_id
    parameters = [
        p
        for p in operation.get("parameters", [])
        if not (p["in"] == "header" and p["name"].lower() == "authorization")
    ]
    if not path.startswith(("/files", "/uploads")):
        parameters.append(_OPENAI_BETA)
    operation["parameters"] = parameters
    responses: dict[str, Any] = operation["responses"]
    responses.pop("422", None)
    ok = responses.setdefault("200", {"description": "Successful Response"})
    answer = openai_responses.operations().get(operation_id or "", {}).get("application/json")
    if answer is not None:
        ok["content"] = {"application/json": copy.deepcopy(answer)}
    if operation_id in STREAMING:
        ok["content"]["text/event-stream"] = _EVENT_STREAM
    elif operation_id == "resumeRunEvents":
        ok["content"] = {"text/event-stream": _EVENT_STREAM}
    elif operation_id == "downloadFile":
        ok["content"] = {"application/octet-stream": {"schema": {"type": "string"}}}
    statuses = ["400", "401", "500"]
    if "{" in path or operation_id == "createThreadAndRun":  # an id that may be unknown
        statuses.append("404")
    if "requestBody" in operation:
        statuses.append("413")
    for status in sorted(statuses):
        responses[status] = {"$ref": f"#/components/responses/{status}"}
