"""Request schemas, and how ``api/errors.py`` words their failures: OpenAI's
messages, ``param`` paths and ``code``s, in OpenAI's envelope."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter, ValidationError

from threadline.api import errors as api_errors
from threadline.api.errors import validation_error
from threadline.api.requests import MAX_DEPTH, parse_json
from threadline.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    RequestTooLargeError,
    ThreadlineError,
)
from threadline.schemas.assistant import CreateAssistantRequest, ModifyAssistantRequest
from threadline.schemas.message import CreateMessageRequest, ModifyMessageRequest
from threadline.schemas.thread import CreateThreadRequest


def render(model: type[BaseModel], body: Any) -> InvalidRequestError:
    """What the API answers when ``body`` fails ``model``, as FastAPI reports it."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    errors = [{**e, "loc": ("body", *e["loc"])} for e in caught.value.errors()]
    return validation_error(RequestValidationError(errors, body=body))


def as_tuple(error: InvalidRequestError) -> tuple[str, str | None, str | None]:
    return error.message, error.param, error.code


# --------------------------------------------------------------------------- schemas accept


def test_minimal_and_full_requests_are_accepted() -> None:
    assert CreateAssistantRequest.model_validate({"model": "m"}).tools == []
    full = CreateAssistantRequest.model_validate(
        {
            "model": "m",
            "name": None,
            "tools": [
                {"type": "code_interpreter"},
                {"type": "file_search", "file_search": {"max_num_results": 50}},
                {"type": "function", "function": {"name": "a-b_c", "parameters": {}}},
            ],
            "tool_resources": {"code_interpreter": {"file_ids": ["f"] * 20}},
            "metadata": {"k" * 64: "v" * 512, **{str(i): "" for i in range(15)}},
            "temperature": 2,
            "top_p": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
            "reasoning_effort": "max",
        }
    )
    assert len(full.tools) == 3
    assert full.temperature == 2.0
    assert CreateThreadRequest.model_validate({}).messages is None
    message = CreateMessageRequest.model_validate(
        {"role": "user", "content": [{"type": "text", "text": ""}], "attachments": None}
    )
    assert message.attachments is None


def test_absent_is_not_null_on_modify() -> None:
    assert ModifyAssistantRequest.model_validate({}).model_fields_set == set()
    assert ModifyAssistantRequest.model_validate({"name": None}).model_fields_set == {"name"}
    assert ModifyMessageRequest.model_validate({"metadata": None}).metadata is None


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {},
            ("Missing required parameter: 'model'.", "model", "missing_required_parameter"),
        ),
        (
            {"model": "m", "x": 1},
            ("Unknown parameter: 'x'.", "x", "unknown_parameter"),
        ),
        (
            {"model": "m", "name": "n" * 257},
            (
                "Invalid 'name': string too long. Expected a string with maximum length 256, "
                "but got a string with length 257 instead.",
                "name",
                "string_above_max_length",
            ),
        ),
        (
            {"model": ""},
            (
                "Invalid 'model': empty string. Expected a string with minimum length 1, "
                "but got an empty string instead.",
                "model",
                "empty_string",
            ),
        ),
        (
            {"model": "m", "top_p": 1.5},
            (
                "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, "
                "but got 1.5 instead.",
                "top_p",
                "decimal_above_max_value",
            ),
        ),
        (
            {"model": "m", "temperature": -1},
            (
                "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, "
                "but got -1 instead.",
                "temperature",
                "decimal_below_min_value",
            ),
        ),
        (
            {"model": "m", "temperature": "1"},
            (
                "Invalid type for 'temperature': expected a number, but got a string instead.",
                "temperature",
                "invalid_type",
            ),
        ),
        (
            {"model": "m", "tools": {"type": "code_interpreter"}},
            (
                "Invalid type for 'tools': expected an array, but got an object instead.",
                "tools",
                "invalid_type",
            ),
        ),
        (
            {"model": "m", "tools": [{"type": "retrieval"}]},
            (
                "Invalid value: 'retrieval'. Supported values are: 'code_interpreter', "
                "'file_search', and 'function'.",
                "tools[0].type",
                "invalid_value",
            ),
        ),
        (
            {"model": "m", "tools": [{"type": "function", "function": {"name": "a b"}}]},
            (
                "Invalid 'tools[0].function.name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
                "tools[0].function.name",
                "invalid_value",
            ),
        ),
        (
            {
                "model": "m",
                "tools": [{"type": "file_search", "file_search": {"max_num_results": 0}}],
            },
            (
                "Invalid 'tools[0].file_search.max_num_results': integer below minimum value. "
                "Expected a value >= 1, but got 0 instead.",
                "tools[0].file_search.max_num_results",
                "integer_below_min_value",
            ),
        ),
        (
            {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "x": 1}}]},
            (
                "Unknown parameter: 'tools[0].function.x'.",
                "tools[0].function.x",
                "unknown_parameter",
            ),
        ),
        (
            {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": ["f"] * 21}}},
            (
                "Invalid 'tool_resources.code_interpreter.file_ids': array too long. Expected an "
                "array with maximum length 20, but got an array with length 21 instead.",
                "tool_resources.code_interpreter.file_ids",
                "array_above_max_length",
            ),
        ),
        (
            {"model": "m", "response_format": {"type": "yaml"}},
            (
                "Invalid value: 'yaml'. Supported values are: 'text', 'json_object', and "
                "'json_schema'.",
                "response_format.type",
                "invalid_value",
            ),
        ),
        (
            {"model": "m", "response_format": "json"},
            (
                "Invalid value: 'json'. Supported values are: 'auto'.",
                "response_format",
                "invalid_value",
            ),
        ),
        (
            {"model": "m", "metadata": {str(i): "v" for i in range(17)}},
            (
                "Invalid 'metadata': too many properties. Expected an object with at most 16 "
                "properties, but got an object with 17 properties instead.",
                "metadata",
                "object_above_max_properties",
            ),
        ),
        (
            {"model": "m", "metadata": {"k.with.dots" + "k" * 60: "v"}},
            (
                "Invalid 'metadata': key too long. Expected a key with maximum length 64, "
                "but got a key with length 71 instead.",
                "metadata",
                "string_above_max_length",
            ),
        ),
        (
            {"model": "m", "metadata": {"a": None}},
            (
                "Invalid type for 'metadata.a': expected a string, but got null instead.",
                "metadata.a",
                "invalid_type",
            ),
        ),
        (
            [1],
            (
                "Invalid type for request body: expected an object, but got an array instead.",
                None,
                "invalid_type",
            ),
        ),
    ],
)
def test_assistant_errors_read_like_openais(
    body: Any, expected: tuple[str, str | None, str]
) -> None:
    assert as_tuple(render(CreateAssistantRequest, body)) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"messages": [{"role": "user", "content": "ok"}, {"role": "tool", "content": "x"}]},
            (
                "Invalid value: 'tool'. Supported values are: 'user' and 'assistant'.",
                "messages[1].role",
                "invalid_value",
            ),
        ),
        (
            {"messages": [{"role": "user", "content": 1}]},
            (
                "Invalid type for 'messages[0].content': expected one of a string or an array, "
                "but got an integer instead.",
                "messages[0].content",
                "invalid_type",
            ),
        ),
        (
            {"messages": [{"role": "user", "content": []}]},
            (
                "Invalid 'messages[0].content': empty array. Expected an array with minimum "
                "length 1, but got an empty array instead.",
                "messages[0].content",
                "empty_array",
            ),
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            (
                "Invalid type for 'messages[0].content[0].text': expected a string, but got an "
                "integer instead.",
                "messages[0].content[0].text",
                "invalid_type",
            ),
        ),
        (
            {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            (
                "Missing required parameter: 'messages[0].content[0].type'.",
                "messages[0].content[0].type",
                "missing_required_parameter",
            ),
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "a:u", "detail": "hd"}}
                        ],
                    }
                ]
            },
            (
                "Invalid value: 'hd'. Supported values are: 'auto', 'low', and 'high'.",
                "messages[0].content[0].image_url.detail",
                "invalid_value",
            ),
        ),
        (
            {"messages": [{"role": "user", "content": "x", "attachments": [{"tools": []}]}]},
            (
                "Missing required parameter: 'messages[0].attachments[0].file_id'.",
                "messages[0].attachments[0].file_id",
                "missing_required_parameter",
            ),
        ),
        (
            {"tool_resources": {"file_search": {"vector_store_ids": ["a", "b"]}}},
            (
                "Invalid 'tool_resources.file_search.vector_store_ids': array too long. Expected "
                "an array with maximum length 1, but got an array with length 2 instead.",
                "tool_resources.file_search.vector_store_ids",
                "array_above_max_length",
            ),
        ),
    ],
)
def test_thread_errors_read_like_openais(body: Any, expected: tuple[str, str | None, str]) -> None:
    assert as_tuple(render(CreateThreadRequest, body)) == expected


def test_modify_assistant_refuses_a_null_model_only() -> None:
    error = render(ModifyAssistantRequest, {"model": None})
    assert as_tuple(error) == (
        "Invalid type for 'model': expected a string, but got null instead.",
        "model",
        "invalid_type",
    )
    assert ModifyAssistantRequest.model_validate({"name": None, "tools": None}).model is None


def test_strict_types() -> None:
    for body in ({"model": "m", "temperature": "0.5"}, {"model": "m", "temperature": True}):
        assert render(CreateAssistantRequest, body).code == "invalid_type"
    assert render(CreateAssistantRequest, {"model": 1}).code == "invalid_type"
    error = render(
        CreateAssistantRequest,
        {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]},
    )
    assert (error.param, error.code) == ("tools[0].function.strict", "invalid_type")


def test_query_parameter_errors() -> None:
    adapter = TypeAdapter(Annotated[int, Query(ge=1, le=100)])
    for raw, message, code in (
        (
            "0",
            "Invalid 'limit': integer below minimum value. Expected a value >= 1, "
            "but got 0 instead.",
            "integer_below_min_value",
        ),
        (
            "x",
            "Invalid type for 'limit': expected an integer, but got a string instead.",
            "invalid_type",
        ),
    ):
        with pytest.raises(ValidationError) as caught:
            adapter.validate_python(raw)
        errors = [{**e, "loc": ("query", "limit")} for e in caught.value.errors()]
        assert as_tuple(validation_error(RequestValidationError(errors))) == (
            message,
            "limit",
            code,
        )


def test_json_errors_and_an_empty_body() -> None:
    invalid = RequestValidationError([{"type": "json_invalid", "loc": ("body", 3), "msg": "x"}])
    error = validation_error(invalid)
    assert error.message.startswith("We could not parse the JSON body of your request.")
    assert (error.param, error.code) == (None, None)
    missing = validation_error(
        RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    )
    assert missing.code == "missing_required_parameter"
    assert validation_error(RequestValidationError([])).status_code == 400


# --------------------------------------------------------------------------- JSON reading


@pytest.mark.parametrize(
    "body",
    [b"NaN", b'{"a": Infinity}', b"[-Infinity]", b'{"a": 1e400}', b"9" * 5000, b'"\xff"'],
)
def test_non_finite_numbers_are_not_json(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_json(body)


def test_unstorable_text_names_its_field() -> None:
    assert parse_json(b'{"a": [1.5, "ok", {"b": null}]}') == {"a": [1.5, "ok", {"b": None}]}
    for body, param in (
        (b'{"name": "a\\u0000b"}', "name"),
        (b'{"messages": [{"content": "x"}, {"content": "\\ud83d"}]}', "messages[1].content"),
        (b'{"metadata": {"k\\u0000": "v"}}', "metadata"),
        (b'"\\u0000"', None),
    ):
        with pytest.raises(InvalidRequestError) as caught:
            parse_json(body)
        assert caught.value.param == param
        assert caught.value.code == "invalid_value"
    assert parse_json(b'{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001f600"}


def test_nesting_depth_is_bounded() -> None:
    assert parse_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) is not None
    for depth in (MAX_DEPTH + 2, 5000, 100_000):
        with pytest.raises(InvalidRequestError) as caught:
            parse_json(b'{"a": ' + b"[" * depth + b"]" * depth + b"}")
        assert "nested at most 100 levels" in caught.value.message
        assert caught.value.param in ("a" + "[0]" * MAX_DEPTH, None)


# --------------------------------------------------------------------------- the envelope


@pytest.fixture
def app_client() -> TestClient:
    app = FastAPI()
    api_errors.install(app)

    @app.get("/raise/{kind}")
    async def raise_(kind: str) -> None:
        raised: dict[str, Exception] = {
            "not_found": NotFoundError.for_object("thread", "thread_x"),
            "file": NotFoundError.for_object("file", "file-x"),
            "auth": AuthenticationError("bad key", code="invalid_api_key"),
            "too_large": RequestTooLargeError("too big", code="request_too_large"),
            "wrapped": HTTPException(400, "There was an error parsing the body"),
            "bug": RuntimeError("secret detail"),
        }
        error = raised[kind]
        if kind == "wrapped":
            raise error from InvalidRequestError("inner", param="p", code="c")
        raise error

    @app.post("/body")
    async def body(req: CreateAssistantRequest) -> dict[str, str]:
        return {"model": req.model}

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("not_found", 404, ("No thread found with id 'thread_x'.", None, None)),
        ("file", 404, ("No such File object: file-x", "id", None)),
        ("auth", 401, ("bad key", None, "invalid_api_key")),
        ("too_large", 413, ("too big", None, "request_too_large")),
        ("wrapped", 400, ("inner", "p", "c")),
    ],
)
def test_errors_render_as_the_envelope(
    app_client: TestClient, kind: str, status: int, error: tuple[str, str | None, str | None]
) -> None:
    response = app_client.get(f"/raise/{kind}")
    assert response.status_code == status
    message, param, code = error
    assert response.json() == {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


def test_unexpected_errors_are_500_without_detail(app_client: TestClient) -> None:
    response = app_client.get("/raise/bug")
    assert response.status_code == 500
    assert response.json()["error"] == {
        "message": "The server had an error while processing your request.",
        "type": "api_error",
        "param": None,
        "code": None,
    }
    assert "secret" not in response.text


def test_routing_errors(app_client: TestClient) -> None:
    missing = app_client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (GET /nowhere)"
    wrong = app_client.delete("/body")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["message"] == "Invalid method for URL (DELETE /body)"
    invalid = app_client.post("/body", json={"model": 1})
    assert invalid.status_code == 400
    assert invalid.json()["error"]["param"] == "model"


def test_error_classes_carry_their_status() -> None:
    assert ThreadlineError("x").status_code == 500
    assert InvalidRequestError("x").status_code == 400
    assert InvalidRequestError("x").envelope() == {
        "error": {"message": "x", "type": "invalid_request_error", "param": None, "code": None}
    }
