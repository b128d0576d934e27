"""The playground's pages as htmx asks for them (``HX-Request`` and the bearer key),
without a browser, on every engine: what a page shows is what ``/v1`` shows that
key's project, images inline, annotations marked, another project's objects never."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.servers import KEY_A, KEY_B

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


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


def test_the_root_leads_to_the_playground(client: openai.OpenAI) -> None:
    root = str(client.base_url).rstrip("/").removesuffix("/v1")
    response = httpx.get(f"{root}/", timeout=30)
    assert response.status_code == 307
    assert response.headers["location"] == "/playground"
