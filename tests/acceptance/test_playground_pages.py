"""The playground's pages as htmx asks for them (``HX-Request`` and the bearer key),
without a browser, on every engine: what a page shows is what ``/v1`` shows that
key's project, images inline, annotations marked, another project's objects never."""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import pytest

from tests.support.runs import POLL_MS, scripted_thread
from tests.support.servers import KEY_A, KEY_B

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
TIDES = b"# Tides\n\nThe high tide in Brest is at noon on Saturday.\n"


def _fragment(client: openai.OpenAI, path: str, key: str = KEY_A) -> httpx.Response:
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    headers = {"HX-Request": "true", "Authorization": f"Bearer {key}"}
    return httpx.get(f"{root}{path}", headers=headers, timeout=30)


def test_a_browser_navigation_gets_the_shell_and_no_data(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(metadata={"secret": "shell-test"})
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    page = httpx.get(f"{root}/playground/threads", timeout=30)
    assert page.status_code == 200
    assert 'hx-trigger="load"' in page.text
    assert thread.id not in page.text


def test_the_threads_page_lists_the_projects_threads_only(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    mine = client.beta.threads.create().id
    theirs = other_client.beta.threads.create().id
    page = _fragment(client, "/playground/threads")
    assert page.status_code == 200
    assert mine in page.text
    assert theirs not in page.text


def test_another_projects_thread_is_not_found(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "only project A may read this"}]
    )
    page = _fragment(other_client, f"/playground/threads/{thread.id}", key=KEY_B)
    assert page.status_code == 404
    assert "Not found" in page.text
    assert "only project A may read this" not in page.text


def test_an_id_is_one_path_segment_of_the_api_call(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    # "%3F" is "?" once decoded: an id must never carry a query into the /v1 call.
    page = _fragment(client, f"/playground/threads/{thread.id}%3Flimit=1")
    assert page.status_code == 404
    assert "Not found" in page.text


def test_a_wrong_key_is_told_so(client: openai.OpenAI) -> None:
    page = _fragment(client, "/playground/assistants", key="sk-wrong")
    assert page.status_code == 401
    assert "The API key was not accepted" in page.text


def test_a_message_shows_its_image_inline(client: openai.OpenAI) -> None:
    image = client.files.create(file=("dot.png", PNG), purpose="vision")
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is <this>?"},
                    {"type": "image_file", "image_file": {"file_id": image.id}},
                ],
            }
        ]
    )
    page = _fragment(client, f"/playground/threads/{thread.id}")
    assert page.status_code == 200
    assert "data:image/png;base64," in page.text
    assert "What is &lt;this&gt;?" in page.text


@pytest.mark.parametrize(
    ("path", "text"),
    [("/playground/files", "Upload"), ("/playground/vector_stores", "Create vector store")],
)
def test_the_files_and_stores_pages_render(client: openai.OpenAI, path: str, text: str) -> None:
    page = _fragment(client, path)
    assert page.status_code == 200
    assert text in page.text


@pytest.mark.parametrize("temperature", ["nan", "inf", "1e999"])
def test_a_number_json_cannot_hold_is_refused_on_the_form(
    client: openai.OpenAI, temperature: str
) -> None:
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    page = httpx.post(
        f"{root}/playground/assistants",
        headers={"HX-Request": "true", "Authorization": f"Bearer {KEY_A}"},
        data={"model": "gpt-4o", "name": "not-finite", "temperature": temperature},
        timeout=30,
    )
    assert page.status_code == 400
    assert "temperature must be a number" in page.text
    assert all(a.name != "not-finite" for a in client.beta.assistants.list(limit=100))


def test_the_root_leads_to_the_playground(client: openai.OpenAI) -> None:
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    response = httpx.get(f"{root}/", timeout=30)
    assert response.status_code == 307
    assert response.headers["location"] == "/playground"


def test_a_run_can_be_cancelled_from_its_page(client: openai.OpenAI) -> None:
    thread_id = scripted_thread(client, {"hang": True})
    made = client.beta.assistants.create(model="gpt-4o")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=made.id)
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    headers = {"HX-Request": "true", "Authorization": f"Bearer {KEY_A}"}
    path = f"/playground/threads/{thread_id}/runs/{run.id}"
    page = httpx.get(f"{root}{path}", headers=headers, timeout=30)
    assert 'id="cancel-run"' in page.text
    cancelled = httpx.post(f"{root}{path}/cancel", headers=headers, timeout=30)
    assert cancelled.status_code == 200
    assert re.search(r'id="run-status">cancell(ing|ed)<', cancelled.text)
    again = httpx.post(f"{root}{path}/cancel", headers=headers, timeout=30)
    assert again.status_code in (200, 400)
    ended = client.beta.threads.runs.poll(run.id, thread_id=thread_id, poll_interval_ms=POLL_MS)
    assert ended.status == "cancelled"


def _completed(client: openai.OpenAI, thread_id: str, **assistant: Any) -> str:
    made = client.beta.assistants.create(model="gpt-4o", **assistant)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=made.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    return run.id


def test_a_search_shows_its_results_and_the_answer_its_citation(client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("tides.md", TIDES), purpose="assistants").id
    store = client.vector_stores.create(name="tides")
    client.vector_stores.files.create_and_poll(
        file_id=file_id, vector_store_id=store.id, poll_interval_ms=20
    )
    thread_id = scripted_thread(
        client,
        {"tool_calls": [{"name": "file_search", "arguments": {"query": "tide Brest"}}]},
        "At noon【0:0†tides.md】.",
    )
    run_id = _completed(
        client,
        thread_id,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    run_page = _fragment(client, f"/playground/threads/{thread_id}/runs/{run_id}")
    assert run_page.status_code == 200
    assert "tides.md" in run_page.text
    assert "high tide in Brest is at noon" in run_page.text
    thread_page = _fragment(client, f"/playground/threads/{thread_id}")
    assert (
        '<mark class="cite" title="file_citation">【0:0†tides.md】<sup>1</sup>' in thread_page.text
    )
    assert file_id in thread_page.text


def test_code_shows_its_input_logs_and_figure(client: openai.OpenAI) -> None:
    code = (
        "import matplotlib.pyplot as plt\nprint('plotting')\nplt.plot([1, 2], [2, 1])\nplt.show()"
    )
    thread_id = scripted_thread(
        client,
        {"tool_calls": [{"name": "code_interpreter", "arguments": {"input": code}}]},
        "A chart.",
    )
    run_id = _completed(client, thread_id, tools=[{"type": "code_interpreter"}])
    run_page = _fragment(client, f"/playground/threads/{thread_id}/runs/{run_id}")
    assert run_page.status_code == 200
    assert "plt.plot([1, 2], [2, 1])" in run_page.text
    assert "plotting" in run_page.text
    assert 'alt="figure file-' in run_page.text
    thread_page = _fragment(client, f"/playground/threads/{thread_id}")
    assert "data:image/png;base64," in thread_page.text
