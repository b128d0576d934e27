"""The playground's pages. A page asked for by the browser itself is the shell
(``base.html``), whose ``<main>`` then asks for the same URL through htmx with the
signed-in key; only those requests read ``/v1`` and render what they show."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.responses import HTMLResponse, Response

from threadline.web import forms
from threadline.web.api_client import Api, ApiError, connect
from threadline.web.render import ACTIVE, data_uri, page

router = APIRouter(prefix="/playground", include_in_schema=False)

RESULTS_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
MAX_INLINE_IMAGE = 8 * 1024 * 1024


class ShellWanted(Exception):
    """A browser navigation (no ``HX-Request``): answer with the page's shell."""


async def _api(request: Request) -> AsyncIterator[Api]:
    if request.method == "GET" and "hx-request" not in request.headers:
        raise ShellWanted
    authorization = request.headers.get("authorization")
    if not authorization:
        raise ApiError(401, "Sign in with an API key first.")
    request_id = getattr(request.state, "request_id", None)
    async with connect(request.app, authorization, request_id) as api:
        yield api


ApiDep = Annotated[Api, Depends(_api)]


def _seg(value: str) -> str:
    """``value`` as one path segment of a ``/v1`` call: an id from the page's URL
    never carries a query or another path into it."""
    return quote(value, safe="")


def redirect(url: str) -> Response:
    """Send htmx (the whole page) to ``url``."""
    return Response(status_code=204, headers={"HX-Redirect": url})


async def _form(request: Request) -> dict[str, str]:
    async with request.form() as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


async def _images(api: Api, file_ids: Iterable[str]) -> dict[str, str]:
    """``data:`` URIs of the images ``file_ids`` name (those that can be read)."""
    found: dict[str, str] = {}
    for file_id in dict.fromkeys(file_ids):
        try:
            content = await api.content(f"/files/{_seg(file_id)}/content")
        except ApiError:
            continue
        if len(content) <= MAX_INLINE_IMAGE:
            found[file_id] = data_uri(content)
    return found


@router.get("", response_class=HTMLResponse)
async def sign_in() -> Response:
    return page("signin.html")


# --------------------------------------------------------------------- assistants


@router.get("/assistants")
async def assistants(api: ApiDep) -> Response:
    listed = await api.get("/assistants", limit=100)
    return page("assistants.html", assistants=listed["data"], fields={"model": "gpt-4o"})


@router.post("/assistants")
async def create_assistant(request: Request, api: ApiDep) -> Response:
    fields = await _form(request)
    try:
        made = await api.post("/assistants", forms.assistant_body(fields))
    except (forms.FormError, ApiError) as exc:
        listed = await api.get("/assistants", limit=100)
        return page(
            "assistants.html", 400, assistants=listed["data"], fields=fields, error=str(exc)
        )
    return redirect(f"/playground/assistants/{made['id']}")


@router.get("/assistants/{assistant_id}")
async def assistant(assistant_id: str, api: ApiDep) -> Response:
    found = await api.get(f"/assistants/{_seg(assistant_id)}")
    return page("assistant.html", assistant=found, fields=forms.assistant_fields(found))


@router.post("/assistants/{assistant_id}")
async def modify_assistant(assistant_id: str, request: Request, api: ApiDep) -> Response:
    fields = await _form(request)
    try:
        found = await api.post(f"/assistants/{_seg(assistant_id)}", forms.assistant_body(fields))
    except (forms.FormError, ApiError) as exc:
        found = await api.get(f"/assistants/{_seg(assistant_id)}")
        return page("assistant.html", 400, assistant=found, fields=fields, error=str(exc))
    return page("assistant.html", assistant=found, fields=forms.assistant_fields(found), saved=True)


@router.delete("/assistants/{assistant_id}")
async def delete_assistant(assistant_id: str, api: ApiDep) -> Response:
    await api.delete(f"/assistants/{_seg(assistant_id)}")
    return redirect("/playground/assistants")


# ------------------------------------------------------------------------ threads


@router.get("/threads")
async def threads(api: ApiDep, after: str | None = None) -> Response:
    params: dict[str, Any] = {"limit": 50}
    if after:
        params["after"] = after
    listed = await api.get("/threads", **params)
    return page("threads.html", threads=listed["data"], has_more=listed["has_more"])


@router.post("/threads")
async def create_thread(api: ApiDep, assistant: str | None = None) -> Response:
    made = await api.post("/threads")
    chosen = f"?assistant={quote(assistant)}" if assistant else ""
    return redirect(f"/playground/threads/{made['id']}{chosen}")


@router.get("/threads/{thread_id}")
async def thread(thread_id: str, api: ApiDep, assistant: str | None = None) -> Response:
    found = await api.get(f"/threads/{_seg(thread_id)}")
    # The newest hundred, oldest first.
    messages = (await api.get(f"/threads/{_seg(thread_id)}/messages", limit=100))["data"][::-1]
    runs = (await api.get(f"/threads/{_seg(thread_id)}/runs", limit=20))["data"]
    listed = (await api.get("/assistants", limit=100))["data"]
    names = {f["id"]: f["filename"] for f in (await api.get("/files", limit=100))["data"]}
    images = await _images(
        api,
        (
            part["image_file"]["file_id"]
            for message in messages
            for part in message["content"]
            if part["type"] == "image_file"
        ),
    )
    return page(
        "thread.html",
        thread=found,
        messages=messages,
        runs=runs,
        assistants=listed,
        images=images,
        names=names,
        chosen=assistant,
    )


@router.get("/threads/{thread_id}/runs/{run_id}")
async def run(thread_id: str, run_id: str, api: ApiDep) -> Response:
    return await _run_page(api, thread_id, run_id)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(thread_id: str, run_id: str, api: ApiDep) -> Response:
    try:
        await api.post(f"/threads/{_seg(thread_id)}/runs/{_seg(run_id)}/cancel")
    except ApiError as exc:
        return await _run_page(api, thread_id, run_id, error=exc.message, status_code=exc.status)
    return await _run_page(api, thread_id, run_id)


@router.post("/threads/{thread_id}/runs/{run_id}/outputs")
async def submit_outputs(thread_id: str, run_id: str, request: Request, api: ApiDep) -> Response:
    fields = await _form(request)
    outputs = [
        {"tool_call_id": key.removeprefix("output:"), "output": value}
        for key, value in fields.items()
        if key.startswith("output:")
    ]
    try:
        await api.post(
            f"/threads/{_seg(thread_id)}/runs/{_seg(run_id)}/submit_tool_outputs",
            {"tool_outputs": outputs},
        )
    except ApiError as exc:
        return await _run_page(api, thread_id, run_id, error=exc.message, status_code=400)
    return await _run_page(api, thread_id, run_id)


async def _run_page(
    api: Api, thread_id: str, run_id: str, error: str | None = None, status_code: int = 200
) -> Response:
    found = await api.get(f"/threads/{_seg(thread_id)}/runs/{_seg(run_id)}")
    steps = await api.get(
        f"/threads/{_seg(thread_id)}/runs/{_seg(run_id)}/steps",
        limit=100,
        order="asc",
        **{"include[]": RESULTS_CONTENT},
    )
    images = await _images(
        api,
        (
            output["image"]["file_id"]
            for step in steps["data"]
            if step["step_details"]["type"] == "tool_calls"
            for call in step["step_details"]["tool_calls"]
            if call["type"] == "code_interpreter"
            for output in call["code_interpreter"]["outputs"]
            if output["type"] == "image"
        ),
    )
    return page(
        "run.html",
        status_code,
        run=found,
        steps=steps["data"],
        images=images,
        polling=found["status"] in ACTIVE,
        error=error,
    )


# ------------------------------------------------------------ files and vector stores


@router.get("/files")
async def files(api: ApiDep) -> Response:
    return await _files_page(api)


async def _files_page(api: Api, error: str | None = None, status_code: int = 200) -> Response:
    listed = await api.get("/files", limit=100)
    return page("files.html", status_code, files=listed["data"], error=error)


async def _upload(request: Request, api: Api) -> dict[str, Any]:
    async with request.form() as form:
        upload = form.get("file")
        if not isinstance(upload, StarletteUpload) or not upload.filename:
            raise ApiError(400, "Choose a file to upload.", "file")
        filename, content = upload.filename, await upload.read()
    made: dict[str, Any] = await api.upload(filename, content)
    return made


@router.post("/files")
async def upload_file(request: Request, api: ApiDep) -> Response:
    try:
        await _upload(request, api)
    except ApiError as exc:
        return await _files_page(api, exc.message, 400)
    return await _files_page(api)


@router.delete("/files/{file_id}")
async def delete_file(file_id: str, api: ApiDep) -> Response:
    await api.delete(f"/files/{_seg(file_id)}")
    return await _files_page(api)


@router.get("/vector_stores")
async def vector_stores(api: ApiDep) -> Response:
    listed = await api.get("/vector_stores", limit=100)
    return page("vector_stores.html", stores=listed["data"])


@router.post("/vector_stores")
async def create_vector_store(request: Request, api: ApiDep) -> Response:
    name = (await _form(request)).get("name", "").strip()
    made = await api.post("/vector_stores", {"name": name} if name else {})
    return redirect(f"/playground/vector_stores/{made['id']}")


@router.get("/vector_stores/{store_id}")
async def vector_store(store_id: str, api: ApiDep) -> Response:
    context = await _store(api, store_id)
    return page("vector_store.html", **context)


@router.get("/vector_stores/{store_id}/status")
async def vector_store_status(store_id: str, api: ApiDep) -> Response:
    return page("store_status.html", **await _store(api, store_id))


@router.post("/vector_stores/{store_id}/files")
async def add_store_file(store_id: str, request: Request, api: ApiDep) -> Response:
    try:
        made = await _upload(request, api)
        await api.post(f"/vector_stores/{_seg(store_id)}/files", {"file_id": made["id"]})
    except ApiError as exc:
        return page("store_status.html", 400, **await _store(api, store_id), error=exc.message)
    return page("store_status.html", **await _store(api, store_id))


@router.post("/vector_stores/{store_id}/search")
async def search_store(store_id: str, request: Request, api: ApiDep) -> Response:
    query = (await _form(request)).get("query", "").strip()
    if not query:
        return page("search_results.html", 400, error="Type something to search for.")
    try:
        found = await api.post(f"/vector_stores/{_seg(store_id)}/search", {"query": query})
    except ApiError as exc:
        return page("search_results.html", exc.status, error=exc.message)
    return page("search_results.html", query=query, results=found["data"])


async def _store(api: Api, store_id: str) -> dict[str, Any]:
    store = await api.get(f"/vector_stores/{_seg(store_id)}")
    listed = await api.get(f"/vector_stores/{_seg(store_id)}/files", limit=100)
    names = {f["id"]: f["filename"] for f in (await api.get("/files", limit=100))["data"]}
    return {"store": store, "files": listed["data"], "names": names}
