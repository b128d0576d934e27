"""The browser playground (``/playground``), driven by Playwright in Debian's Chromium
against a live server with the scripted model: signing in (and a wrong key), an
assistant with a function tool, a streamed answer, a run's steps and its
``requires_action`` form, a file ingested into a vector store and searched, and the
offline ``/docs``. Each page is saved as a screenshot (``THREADLINE_SCREENSHOTS``, or
a folder under pytest's tmp dir)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest

from tests.support.runs import WEATHER, weather_call
from tests.support.servers import KEY_A, KEY_B, Served, serve
from threadline.models.scripted import directive

playwright_sync = pytest.importorskip("playwright.sync_api")
Browser = playwright_sync.Browser
Page = playwright_sync.Page
expect = playwright_sync.expect

CHROMIUM = Path(os.environ.get("THREADLINE_CHROMIUM", "/usr/bin/chromium"))
TIMEOUT_MS = 15_000
MAX_UPLOAD = 256 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(
        "sqlite", tmp_path_factory.mktemp("playground"), max_upload_bytes=MAX_UPLOAD
    ) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("THREADLINE_REQUIRE_BROWSER") == "1":
            raise AssertionError(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with playwright_sync.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get("THREADLINE_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _root(server: Served) -> str:
    return server.url.removesuffix("/v1")


@pytest.fixture
def page(browser: Browser, server: Served) -> Iterator[Page]:
    """A laptop-sized tab signed in as project A (the key in this tab's session)."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('threadline.apiKey', {json.dumps(KEY_A)})")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def _shot(page: Page, shots: Path, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=full_page)


def test_sign_in_and_a_wrong_key(browser: Browser, server: Served, shots: Path) -> None:
    server.client(KEY_B).beta.assistants.create(model="gpt-4o", name="Project B secret")
    server.client(KEY_A).beta.assistants.create(model="gpt-4o", name="Project A helper")
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.goto(_root(server) + "/")
    expect(tab).to_have_url(re.compile(r"/playground$"))
    tab.fill("#api-key", "sk-not-a-key")
    tab.click("button[type=submit]")
    expect(tab.locator("#signin-error")).to_contain_text("not accepted")
    _shot(tab, shots, "signin-wrong-key")
    tab.fill("#api-key", KEY_A)
    tab.click("button[type=submit]")
    expect(tab).to_have_url(re.compile(r"/playground/assistants$"))
    expect(tab.locator("main")).to_contain_text("Project A helper")
    expect(tab.locator("main")).not_to_contain_text("Project B secret")
    _shot(tab, shots, "assistants")
    tab.evaluate("sessionStorage.setItem('threadline.apiKey', 'sk-wrong')")
    tab.goto(_root(server) + "/playground/assistants")
    expect(tab.locator("#page-error")).to_contain_text("The API key was not accepted")
    expect(tab.locator("main")).not_to_contain_text("Project A helper")
    _shot(tab, shots, "wrong-key")
    context.close()


def test_a_page_without_a_key_leads_to_sign_in(browser: Browser, server: Served) -> None:
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(_root(server) + "/playground/threads", timeout=TIMEOUT_MS)
    expect(tab).to_have_url(re.compile(r"/playground\?next=%2Fplayground%2Fthreads$"))
    context.close()


FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def test_create_and_edit_an_assistant(page: Page, server: Served, shots: Path) -> None:
    page.goto(_root(server) + "/playground/assistants")
    form = page.locator("#new-assistant")
    form.locator("[name=name]").fill("Forecaster")
    form.locator("[name=instructions]").fill("Answer with the weather.")
    form.locator("[name=temperature]").fill("0.4")
    form.locator("[name=functions]").fill("{not json")
    form.locator("button[type=submit]").click()
    expect(page.locator("#new-assistant .alert.error")).to_contain_text("not valid JSON")
    page.locator("#new-assistant [name=functions]").fill(json.dumps(FUNCTIONS))
    page.locator("#new-assistant [name=file_search]").check()
    page.locator("#new-assistant button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/playground/assistants/asst_"))
    assistant_id = page.url.rsplit("/", 1)[1]
    made = server.client().beta.assistants.retrieve(assistant_id)
    assert made.name == "Forecaster"
    assert made.temperature == 0.4
    assert [t.type for t in made.tools] == ["file_search", "function"]
    assert made.tools[1].function.parameters == FUNCTIONS[0]["parameters"]  # type: ignore[union-attr]
    page.locator("#edit-assistant [name=instructions]").fill("Be brief.")
    page.locator("#edit-assistant [name=response_format]").select_option("json_object")
    page.locator("#edit-assistant button[type=submit]").click()
    expect(page.locator("#edit-assistant .alert.ok")).to_contain_text("Saved")
    _shot(page, shots, "assistant-edit")
    edited = server.client().beta.assistants.retrieve(assistant_id)
    assert edited.instructions == "Be brief."
    assert edited.response_format.type == "json_object"  # type: ignore[union-attr]
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#edit-assistant button.danger").click()
    expect(page).to_have_url(re.compile(r"/playground/assistants$"))
    with pytest.raises(openai.NotFoundError):
        server.client().beta.assistants.retrieve(assistant_id)


ANSWER = "Tomorrow brings sun over Paris, with a light breeze from the west."


def test_stream_a_run_then_answer_its_tool_call(page: Page, server: Served, shots: Path) -> None:
    sdk = server.client()
    weather = sdk.beta.assistants.create(model="gpt-4o", name="Weather", tools=[WEATHER])
    sdk.beta.assistants.create(model="gpt-4o", name="Other")  # listed first, newest
    page.goto(_root(server) + f"/playground/assistants/{weather.id}")
    page.locator("#talk").click()
    expect(page).to_have_url(re.compile(r"/playground/threads/thread_\w+\?assistant=asst_"))
    thread_id = urlsplit(page.url).path.rsplit("/", 1)[1]
    compose = page.locator("#compose")
    expect(compose.locator("[name=assistant_id]")).to_have_value(weather.id)
    compose.locator("textarea").fill(directive({"text": ANSWER, "chunks": 12, "token_delay": 0.15}))
    compose.locator("[name=files]").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"sunny notes"}]
    )
    compose.locator("button[type=submit]").click()
    # Part of the answer shows while the run is still in progress.
    page.wait_for_function(
        "document.getElementById('stream-text')?.textContent.length > 0"
        " && document.getElementById('stream-status').textContent === 'in_progress'"
    )
    partial = page.locator("#stream-text").text_content() or ""
    assert ANSWER.startswith(partial)
    assert len(partial) < len(ANSWER)
    expect(page.locator("#stream-run")).to_contain_text("run_")
    _shot(page, shots, "thread-streaming")
    expect(page.locator("#messages .message.assistant")).to_contain_text(ANSWER)
    expect(page.locator("#messages .message.user")).to_contain_text("notes.txt")
    expect(page.locator("#compose textarea")).to_have_value("")
    _shot(page, shots, "thread")

    page.locator("#compose textarea").fill(
        directive({"tool_calls": [weather_call("Paris")]}, "Paris is sunny and 22 degrees.")
    )
    expect(page.locator("#compose [name=assistant_id]")).to_have_value(weather.id)
    page.locator("#compose button[type=submit]").click()
    waiting = page.locator(".run-link", has=page.locator(".badge.requires_action"))
    waiting.click()
    form = page.locator("#tool-outputs")
    expect(form).to_contain_text("get_weather")
    expect(form).to_contain_text('"city": "Paris"')
    expect(page.locator(".step")).to_contain_text("(not submitted yet)")
    _shot(page, shots, "run-requires-action")
    form.locator("textarea").fill("22 degrees, sunny")
    form.locator("button[type=submit]").click()
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator(".step").first).to_contain_text("22 degrees, sunny")
    expect(page.locator(".step").nth(1)).to_contain_text("message_creation")
    expect(page.locator("#run-usage")).to_contain_text("tokens")
    expect(page.locator(".timeline")).to_contain_text("completed")
    _shot(page, shots, "run-completed")
    run_id = page.url.rsplit("/", 1)[1]
    run = sdk.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
    assert run.status == "completed"
    step = sdk.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc").data[0]
    assert step.step_details.tool_calls[0].function.output == "22 degrees, sunny"  # type: ignore[union-attr]


def test_a_file_in_a_vector_store_completes_and_is_found(
    page: Page, server: Served, shots: Path
) -> None:
    page.goto(_root(server) + "/playground/vector_stores")
    page.locator("#new-store [name=name]").fill("Handbook")
    page.locator("#new-store button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/playground/vector_stores/vs_"))
    page.locator("#add-store-file [name=file]").set_input_files(
        files=[
            {
                "name": "handbook.txt",
                "mimeType": "text/plain",
                "buffer": b"Holidays: every employee has thirty days of paid leave a year.",
            }
        ]
    )
    page.locator("#add-store-file button[type=submit]").click()
    expect(page.locator("#count-completed")).to_have_text("1")
    expect(page.locator("#store-status tbody")).to_contain_text("handbook.txt")
    expect(page.locator("#store-status .badge.completed").first).to_be_visible()
    page.locator("#search-store [name=query]").fill("paid leave")
    page.locator("#search-store button[type=submit]").click()
    expect(page.locator("#search-results")).to_contain_text("thirty days of paid leave")
    _shot(page, shots, "vector-store")
    page.goto(_root(server) + "/playground/files")
    expect(page.locator("main table")).to_contain_text("handbook.txt")
    with page.expect_download() as downloading:
        page.locator("[data-name='handbook.txt']").click()
    saved = downloading.value
    assert saved.suggested_filename == "handbook.txt"
    assert Path(saved.path()).read_bytes().startswith(b"Holidays: every employee")
    _shot(page, shots, "files")
    page.locator("#upload-file [name=file]").set_input_files(
        files=[
            {
                "name": "big.bin",
                "mimeType": "application/octet-stream",
                "buffer": bytes(MAX_UPLOAD * 2),
            }
        ]
    )
    page.locator("#upload-file button[type=submit]").click()
    expect(page.locator("main .alert.error")).to_contain_text("Request body too large")


def test_docs_work_offline(page: Page, server: Served, shots: Path) -> None:
    served = urlsplit(server.url).netloc
    outside: list[str] = []

    def only_the_server(route: playwright_sync.Route) -> None:
        if urlsplit(route.request.url).netloc == served:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.goto(_root(server) + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("threadline")
    expect(page.locator(".swagger-ui")).to_contain_text("GET/v1/threadsList Threads")
    _shot(page, shots, "docs", full_page=False)
    assert outside == []
