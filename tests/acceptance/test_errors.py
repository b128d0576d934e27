"""Every class of failure, as OpenAI's service answered it: the envelope
``{"error": {message, type, param, code}}`` with 400/401/404/405/413, so that the
SDK raises the matching exception. Raw HTTP where the SDK would not send the mistake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.servers import ENGINES, KEY_A, Served, serve

AUTH = {"Authorization": f"Bearer {KEY_A}"}
JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)
MAX_BODY = 2048
MAX_UPLOAD = 1024


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of a response, after checking it is exactly OpenAI's envelope."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str)
    error: dict[str, Any] = body["error"]
    return error


@pytest.fixture
def http(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, headers=AUTH) as session:
        yield session


@pytest.fixture(scope="module", params=ENGINES)
def small(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server with tiny body and upload limits."""
    data_dir: Path = tmp_path_factory.mktemp(f"small-{request.param}")
    with serve(
        request.param, data_dir, max_body_bytes=MAX_BODY, max_upload_bytes=MAX_UPLOAD
    ) as served:
        yield served


# --------------------------------------------------------------------------- 400


def test_malformed_json(http: httpx.Client) -> None:
    for body in (b'{"model": "gpt-4o"', b"not json", b'{"model": "m",}', b"\xff\xfe"):
        response = http.post(
            "/assistants", content=body, headers={"Content-Type": "application/json"}
        )
        error = error_of(response, 400)
        assert error == {
            "message": JSON_HINT,
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_are_not_json(http: httpx.Client, number: bytes) -> None:
    body = b'{"model": "m", "tools": [{"type": "function", "function": {"name": "f", '
    body += b'"parameters": {"default": ' + number + b"}}}]}"
    response = http.post("/assistants", content=body, headers={"Content-Type": "application/json"})
    assert error_of(response, 400)["message"] == JSON_HINT


@pytest.mark.parametrize("depth", [150, 900, 100_000])
def test_deep_nesting_is_refused_and_stores_nothing(http: httpx.Client, depth: int) -> None:
    newest = http.get("/assistants?limit=1").json()["first_id"]
    nested = b"[" * depth + b"]" * depth
    body = b'{"model": "m", "tools": [{"type": "function", "function": {"name": "f", '
    body += b'"parameters": {"x": ' + nested + b"}}}]}"
    response = http.post("/assistants", content=body, headers={"Content-Type": "application/json"})
    assert "nested at most 100 levels" in error_of(response, 400)["message"]
    assert http.get("/assistants?limit=1").json()["first_id"] == newest


def test_body_must_be_an_object(http: httpx.Client) -> None:
    for body in ([1, 2], "model", 5, None):
        error = error_of(http.post("/assistants", json=body), 400)
        assert error["code"] in ("invalid_type", "missing_required_parameter")
        assert error["param"] is None


def test_missing_body_and_missing_field(http: httpx.Client) -> None:
    error = error_of(http.post("/assistants"), 400)
    assert error["code"] == "missing_required_parameter"
    error = error_of(http.post("/assistants", json={"name": "x"}), 400)
    assert error == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "missing_required_parameter",
    }
    error = error_of(http.post("/threads/thread_x/messages", json={"role": "user"}), 400)
    assert error["param"] == "content"


def test_unknown_parameter_anywhere(http: httpx.Client) -> None:
    error = error_of(http.post("/assistants", json={"model": "m", "colour": "red"}), 400)
    assert error == {
        "message": "Unknown parameter: 'colour'.",
        "type": "invalid_request_error",
        "param": "colour",
        "code": "unknown_parameter",
    }
    body = {"model": "m", "tool_resources": {"code_interpreter": {"file_ids": [], "x": 1}}}
    error = error_of(http.post("/assistants", json=body), 400)
    assert error["param"] == "tool_resources.code_interpreter.x"


def test_wrong_types_are_named(http: httpx.Client) -> None:
    error = error_of(http.post("/assistants", json={"model": "m", "temperature": "0.5"}), 400)
    assert error == {
        "message": "Invalid type for 'temperature': expected a number, but got a string instead.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_type",
    }
    error = error_of(http.post("/assistants", json={"model": 4}), 400)
    assert (
        error["message"]
        == "Invalid type for 'model': expected a string, but got an integer instead."
    )
    thread = http.post("/threads", json={}).json()["id"]
    error = error_of(
        http.post(f"/threads/{thread}/messages", json={"role": "user", "content": {"a": 1}}), 400
    )
    assert error["param"] == "content"
    assert error["code"] == "invalid_type"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_is_json_whatever_its_content_type(
    http: httpx.Client, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    request = http.build_request("POST", "/assistants", content=b'{"model": "gpt-4o"}')
    if content_type is None:
        request.headers.pop("Content-Type", None)
    request.headers.update(headers)
    response = http.send(request)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gpt-4o"


def test_unstorable_text_is_refused(http: httpx.Client) -> None:
    error = error_of(http.post("/assistants", json={"model": "m", "name": "a\x00b"}), 400)
    assert (error["param"], error["code"]) == ("name", "invalid_value")
    body = b'{"model": "m", "metadata": {"k": "\\ud800"}}'
    response = http.post("/assistants", content=body, headers={"Content-Type": "application/json"})
    assert error_of(response, 400)["param"] == "metadata.k"
    for url in ("/assistants/asst_%00", "/assistants?after=%00", "/files?purpose=a%00"):
        assert error_of(http.get(url), 400)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ("limit=0", "limit", "integer_below_min_value"),
        ("limit=101", "limit", "integer_above_max_value"),
        ("limit=ten", "limit", "invalid_type"),
        ("order=up", "order", "invalid_value"),
        ("after=asst_nope", "after", "invalid_cursor"),
        ("before=asst_nope", "before", "invalid_cursor"),
    ],
)
def test_bad_list_parameters(http: httpx.Client, query: str, param: str, code: str) -> None:
    error = error_of(http.get(f"/assistants?{query}"), 400)
    assert (error["param"], error["code"]) == (param, code)


def test_list_limit_messages(http: httpx.Client) -> None:
    assert error_of(http.get("/assistants?limit=101"), 400)["message"] == (
        "Invalid 'limit': integer above maximum value. Expected a value <= 100, "
        "but got 101 instead."
    )
    assert error_of(http.get("/assistants?order=up"), 400)["message"] == (
        "Invalid value: 'up'. Supported values are: 'asc' and 'desc'."
    )


def test_sdk_raises_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.create(model="m", temperature=9)
    assert caught.value.status_code == 400
    assert caught.value.param == "temperature"
    assert caught.value.code == "decimal_above_max_value"
    assert caught.value.type == "invalid_request_error"


# --------------------------------------------------------------------------- 401


def test_missing_key(live_server: str) -> None:
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": KEY_A},
    ):
        response = httpx.get(f"{live_server}/assistants", headers=headers)
        error = error_of(response, 401)
        assert error["message"].startswith("You didn't provide an API key.")
        assert error["type"] == "invalid_request_error"


def test_wrong_key(live_server: str) -> None:
    sdk = openai.OpenAI(base_url=live_server, api_key="sk-not-a-real-key-0000", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as caught:
        sdk.beta.assistants.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-not-a-real-key" not in str(caught.value.body)


def test_key_is_checked_on_every_endpoint(live_server: str) -> None:
    sdk = openai.OpenAI(base_url=live_server, api_key="sk-wrong", max_retries=0)
    with sdk:
        for call in (
            lambda: sdk.beta.assistants.create(model="m"),
            lambda: sdk.beta.assistants.retrieve("asst_x"),
            lambda: sdk.beta.threads.create(),
            lambda: sdk.beta.threads.delete("thread_x"),
            lambda: sdk.beta.threads.messages.list("thread_x"),
            lambda: sdk.files.list(),
            lambda: sdk.files.content("file-x"),
            lambda: sdk.files.create(file=("a.txt", b"x"), purpose="assistants"),
        ):
            with pytest.raises(openai.AuthenticationError):
                call()


# --------------------------------------------------------------------------- 404


def test_unknown_ids(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create().id
    cases = [
        (lambda: client.beta.assistants.retrieve("asst_x"), "No assistant found with id 'asst_x'."),
        (
            lambda: client.beta.assistants.update("asst_x", name="n"),
            "No assistant found with id 'asst_x'.",
        ),
        (lambda: client.beta.assistants.delete("asst_x"), "No assistant found with id 'asst_x'."),
        (lambda: client.beta.threads.retrieve("thread_x"), "No thread found with id 'thread_x'."),
        (lambda: client.beta.threads.update("thread_x"), "No thread found with id 'thread_x'."),
        (lambda: client.beta.threads.delete("thread_x"), "No thread found with id 'thread_x'."),
        (
            lambda: client.beta.threads.messages.retrieve("msg_x", thread_id=thread),
            "No message found with id 'msg_x'.",
        ),
        (
            lambda: client.beta.threads.messages.update("msg_x", thread_id=thread),
            "No message found with id 'msg_x'.",
        ),
        (
            lambda: client.beta.threads.messages.delete("msg_x", thread_id=thread),
            "No message found with id 'msg_x'.",
        ),
        (lambda: client.files.retrieve("file-x"), "No such File object: file-x"),
        (lambda: client.files.delete("file-x"), "No such File object: file-x"),
        (lambda: client.files.content("file-x"), "No such File object: file-x"),
    ]
    for call, message in cases:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.status_code == 404
        assert caught.value.body["message"] == message
        assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("POST", "/assistant"), ("GET", "/threads/t/runs2")]
)
def test_unknown_path(http: httpx.Client, method: str, path: str) -> None:
    error = error_of(http.request(method, path), 404)
    assert error["message"] == f"Invalid URL ({method} /v1{path})"


# --------------------------------------------------------------------------- 405


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/assistants"),
        ("PATCH", "/assistants/asst_x"),
        ("DELETE", "/threads"),
        ("POST", "/files/file-x"),
    ],
)
def test_wrong_method(http: httpx.Client, method: str, path: str) -> None:
    error = error_of(http.request(method, path), 405)
    assert error["message"] == f"Invalid method for URL ({method} /v1{path})"
    assert error["type"] == "invalid_request_error"


# --------------------------------------------------------------------------- 413


def test_body_at_the_limit_is_fine(small: Served) -> None:
    client = small.client()
    overhead = len(b'{"model":"m","instructions":""}')
    created = client.beta.assistants.create(
        model="m", instructions="x" * (MAX_BODY - overhead - 64)
    )
    assert created.instructions is not None


def test_oversize_body_is_413_and_stores_nothing(small: Served) -> None:
    client = small.client()
    assistants = small.count("assistants")
    with pytest.raises(openai.APIStatusError) as caught:
        client.beta.assistants.create(model="m", instructions="x" * (MAX_BODY + 1))
    assert caught.value.status_code == 413
    assert caught.value.type == "invalid_request_error"
    assert small.count("assistants") == assistants


def test_oversize_streamed_body_is_413(small: Served) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "m", "instructions": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    response = httpx.post(
        f"{small.url}/assistants",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    error_of(response, 413)


def test_upload_at_the_limit_is_fine(small: Served) -> None:
    client = small.client()
    uploaded = client.files.create(file=("max.bin", b"x" * MAX_UPLOAD), purpose="assistants")
    assert uploaded.bytes == MAX_UPLOAD
    client.files.delete(uploaded.id)


@pytest.mark.parametrize("size", [MAX_UPLOAD + 1, 200 * 1024])
def test_oversize_upload_is_413_and_leaves_nothing(small: Served, size: int) -> None:
    client = small.client()
    rows = small.count("files")
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=("big.bin", b"x" * size), purpose="assistants")
    assert caught.value.status_code == 413
    assert small.count("files") == rows
    assert small.stored_files() == []


# --------------------------------------------------------------------------- OpenAI-Beta


@pytest.mark.parametrize("beta", [None, "assistants=v2"])
def test_beta_header_is_optional(live_server: str, beta: str | None) -> None:
    headers = {**AUTH, **({"OpenAI-Beta": beta} if beta else {})}
    with httpx.Client(base_url=live_server, headers=headers) as http:
        assistant = http.post("/assistants", json={"model": "m"})
        assert assistant.status_code == 200
        assert http.get(f"/assistants/{assistant.json()['id']}").status_code == 200
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]})
        assert thread.status_code == 200
        thread_id = thread.json()["id"]
        messages = http.get(f"/threads/{thread_id}/messages")
        assert messages.status_code == 200
        assert len(messages.json()["data"]) == 1
        upload = http.post(
            "/files", files={"file": ("a.txt", b"x")}, data={"purpose": "assistants"}
        )
        assert upload.status_code == 200
        assert http.get("/files").status_code == 200
        assert http.delete(f"/threads/{thread_id}").json()["deleted"] is True
