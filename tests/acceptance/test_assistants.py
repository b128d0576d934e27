"""/v1/assistants through the official SDK: CRUD, every field, every spec limit."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.support.servers import KEY_A

FUNCTION = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "strict": True,
    },
}


def raw(live_server: str, assistant_id: str) -> dict[str, Any]:
    """The assistant exactly as the wire carries it."""
    response = httpx.get(
        f"{live_server}/assistants/{assistant_id}",
        headers={"Authorization": f"Bearer {KEY_A}"},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def bad_request(call: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    assert caught.value.status_code == 400
    body: dict[str, Any] = caught.value.body
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"
    return body


def test_create_with_defaults_has_every_spec_field(client: openai.OpenAI, live_server: str) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    assert created.id.startswith("asst_")
    assert created.object == "assistant"
    assert created.model == "gpt-4o"
    assert created.name is None
    assert created.tools == []
    assert created.metadata == {}
    assert created.temperature == 1.0
    assert created.top_p == 1.0
    assert created.response_format == "auto"
    wire = raw(live_server, created.id)
    for key in ("id", "object", "created_at", "name", "description", "model", "instructions"):
        assert key in wire
    for key in ("tools", "tool_resources", "metadata", "temperature", "top_p", "response_format"):
        assert key in wire
    assert wire["description"] is None
    assert wire["instructions"] is None
    assert isinstance(wire["created_at"], int)
    assert wire["created_at"] < 2**31


def test_create_with_every_field_round_trips(client: openai.OpenAI) -> None:
    upload = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants")
    created = client.beta.assistants.create(
        model="gpt-4o-mini",
        name="Weather bot",
        description="Tells the weather.",
        instructions="Be brief.",
        tools=[FUNCTION, {"type": "file_search"}, {"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [upload.id]}},
        response_format=JSON_SCHEMA,
        temperature=0.2,
        top_p=0.9,
        metadata={"team": "ops", "tier": "1"},
        reasoning_effort="low",
    )
    got = client.beta.assistants.retrieve(created.id)
    assert got == created
    assert got.name == "Weather bot"
    assert got.description == "Tells the weather."
    assert got.instructions == "Be brief."
    assert [tool.type for tool in got.tools] == ["function", "file_search", "code_interpreter"]
    function = got.tools[0]
    assert function.type == "function"
    assert function.function.name == "get_weather"
    assert function.function.parameters == FUNCTION["function"]["parameters"]
    assert function.function.strict is True
    assert got.tool_resources is not None
    assert got.tool_resources.code_interpreter is not None
    assert got.tool_resources.code_interpreter.file_ids == [upload.id]
    assert got.response_format is not None
    assert got.response_format != "auto"
    assert got.response_format.type == "json_schema"
    assert got.temperature == pytest.approx(0.2)
    assert got.top_p == pytest.approx(0.9)
    assert got.metadata == {"team": "ops", "tier": "1"}


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh", "max"])
def test_every_spec_reasoning_effort_is_accepted(client: openai.OpenAI, effort: str) -> None:
    created = client.beta.assistants.create(model="o3", reasoning_effort=effort)
    assert created.reasoning_effort == effort


@pytest.mark.parametrize("fmt", [{"type": "text"}, {"type": "json_object"}, JSON_SCHEMA])
def test_response_formats(client: openai.OpenAI, fmt: dict[str, Any]) -> None:
    created = client.beta.assistants.create(model="gpt-4o", response_format=fmt)
    assert created.response_format.type == fmt["type"]


def test_modify_changes_only_what_it_names(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(
        model="gpt-4o", name="before", instructions="keep me", metadata={"a": "1"}
    )
    updated = client.beta.assistants.update(
        created.id,
        name="after",
        metadata={"b": "2"},
        tools=[{"type": "code_interpreter"}],
        temperature=0.5,
        response_format={"type": "json_object"},
        model="gpt-4o-mini",
    )
    assert updated.id == created.id
    assert updated.created_at == created.created_at
    assert updated.name == "after"
    assert updated.instructions == "keep me"
    assert updated.metadata == {"b": "2"}
    assert [tool.type for tool in updated.tools] == ["code_interpreter"]
    assert updated.temperature == 0.5
    assert updated.top_p == 1.0
    assert updated.model == "gpt-4o-mini"
    assert updated.response_format.type == "json_object"
    assert client.beta.assistants.retrieve(created.id) == updated

    cleared = client.beta.assistants.update(created.id, name=None, response_format="auto")
    assert cleared.name is None
    assert cleared.response_format == "auto"
    assert cleared.instructions == "keep me"


def test_modify_cannot_null_the_model(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    error = bad_request(lambda: client.beta.assistants.update(created.id, model=None))
    assert error["param"] == "model"
    assert error["code"] == "invalid_type"
    assert client.beta.assistants.retrieve(created.id).model == "gpt-4o"


def test_delete(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    deleted = client.beta.assistants.delete(created.id)
    assert deleted.id == created.id
    assert deleted.deleted is True
    assert deleted.object == "assistant.deleted"
    with pytest.raises(openai.NotFoundError) as caught:
        client.beta.assistants.retrieve(created.id)
    assert caught.value.body["message"] == f"No assistant found with id '{created.id}'."
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.update(created.id, name="x")
    assert created.id not in [a.id for a in client.beta.assistants.list(limit=100)]


def test_unknown_file_in_tool_resources_stores_nothing(client: openai.OpenAI) -> None:
    before = client.beta.assistants.list(limit=1).first_id
    error = bad_request(
        lambda: client.beta.assistants.create(
            model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": ["file-nope"]}}
        )
    )
    assert error["param"] == "tool_resources.code_interpreter.file_ids"
    assert client.beta.assistants.list(limit=1).first_id == before


LIMITS = [
    ("name", 256, "string_above_max_length"),
    ("description", 512, "string_above_max_length"),
    ("instructions", 256_000, "string_above_max_length"),
]


@pytest.mark.parametrize(("field", "limit", "code"), LIMITS)
def test_string_lengths_at_and_past_the_limit(
    client: openai.OpenAI, field: str, limit: int, code: str
) -> None:
    ok = client.beta.assistants.create(model="gpt-4o", **{field: "x" * limit})
    assert len(getattr(ok, field)) == limit
    error = bad_request(
        lambda: client.beta.assistants.create(model="gpt-4o", **{field: "x" * (limit + 1)})
    )
    assert error["param"] == field
    assert error["code"] == code
    assert error["message"] == (
        f"Invalid '{field}': string too long. Expected a string with maximum length {limit}, "
        f"but got a string with length {limit + 1} instead."
    )
    error = bad_request(lambda: client.beta.assistants.update(ok.id, **{field: "x" * (limit + 1)}))
    assert error["param"] == field


def test_at_most_128_tools(client: openai.OpenAI) -> None:
    def tools(n: int) -> list[Any]:
        return [
            {"type": "function", "function": {"name": f"f{i}", "parameters": {}}} for i in range(n)
        ]

    assert len(client.beta.assistants.create(model="gpt-4o", tools=tools(128)).tools) == 128
    error = bad_request(lambda: client.beta.assistants.create(model="gpt-4o", tools=tools(129)))
    assert error["param"] == "tools"
    assert error["code"] == "array_above_max_length"
    assert error["message"] == (
        "Invalid 'tools': array too long. Expected an array with maximum length 128, "
        "but got an array with length 129 instead."
    )


def test_metadata_limits(client: openai.OpenAI) -> None:
    at_limit = {f"key{i}": "v" for i in range(16)}
    assert client.beta.assistants.create(model="m", metadata=at_limit).metadata == at_limit
    error = bad_request(
        lambda: client.beta.assistants.create(
            model="m", metadata={f"key{i}": "v" for i in range(17)}
        )
    )
    assert error["param"] == "metadata"
    assert error["code"] == "object_above_max_properties"
    assert error["message"].startswith("Invalid 'metadata': too many properties.")

    key64, key65 = "k" * 64, "k" * 65
    assert client.beta.assistants.create(model="m", metadata={key64: "v"}).metadata == {key64: "v"}
    error = bad_request(lambda: client.beta.assistants.create(model="m", metadata={key65: "v"}))
    assert error["param"] == "metadata"
    assert error["code"] == "string_above_max_length"

    value512, value513 = "v" * 512, "v" * 513
    created = client.beta.assistants.create(model="m", metadata={"k": value512})
    assert created.metadata == {"k": value512}
    error = bad_request(lambda: client.beta.assistants.create(model="m", metadata={"k": value513}))
    assert error["param"] == "metadata.k"
    assert error["code"] == "string_above_max_length"
    error = bad_request(lambda: client.beta.assistants.update(created.id, metadata={"k": value513}))
    assert error["param"] == "metadata.k"
    assert client.beta.assistants.retrieve(created.id).metadata == {"k": value512}


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"temperature": 2.01}, "temperature", "decimal_above_max_value"),
        ({"temperature": -0.1}, "temperature", "decimal_below_min_value"),
        ({"top_p": 1.5}, "top_p", "decimal_above_max_value"),
        ({"temperature": "hot"}, "temperature", "invalid_type"),
        ({"name": 5}, "name", "invalid_type"),
        ({"tools": "all"}, "tools", "invalid_type"),
        ({"metadata": {"k": 1}}, "metadata.k", "invalid_type"),
        ({"tools": [{"type": "browser"}]}, "tools[0].type", "invalid_value"),
        ({"tools": [{}]}, "tools[0].type", "missing_required_parameter"),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
        (
            {"tools": [{"type": "function", "function": {"name": "has space"}}]},
            "tools[0].function.name",
            "invalid_value",
        ),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
        ({"model": ""}, "model", "empty_string"),
    ],
)
def test_invalid_fields_are_400_with_param_and_code(
    client: openai.OpenAI, fields: dict[str, Any], param: str, code: str
) -> None:
    body = {"model": "gpt-4o", **fields}
    model = body.pop("model")
    error = bad_request(lambda: client.beta.assistants.create(model=model, extra_body=body))
    assert (error["param"], error["code"]) == (param, code)


def test_messages_read_like_openais(client: openai.OpenAI) -> None:
    error = bad_request(
        lambda: client.beta.assistants.create(model="m", tools=[{"type": "browser"}])
    )
    assert error["message"] == (
        "Invalid value: 'browser'. Supported values are: 'code_interpreter', 'file_search', "
        "and 'function'."
    )
    error = bad_request(lambda: client.beta.assistants.create(model="m", temperature=3))
    assert error["message"] == (
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
        "but got 3 instead."
    )
    error = bad_request(lambda: client.beta.assistants.create(model="m", metadata={"v": 1}))
    assert error["message"] == (
        "Invalid type for 'metadata.v': expected a string, but got an integer instead."
    )
    error = bad_request(lambda: client.beta.assistants.create(model="m", extra_body={"foo": 1}))
    assert error["message"] == "Unknown parameter: 'foo'."
    assert error["code"] == "unknown_parameter"
