"""What both schemathesis suites share: the allow-list's shape, and the findings that
are state or storage, not shape, whichever document the requests come from."""

from __future__ import annotations

import re
from dataclasses import dataclass

import openai
from schemathesis.core.failures import Failure

REJECTED = "Schema-valid request rejected"


@dataclass(frozen=True)
class Allowed:
    """A finding that is not a defect: ``title``, and ``pattern`` found in the
    failure's message or in the response's error message; why in ``reason``."""

    title: str
    pattern: str
    reason: str

    def covers(self, failure: Failure, error: str) -> bool:
        text = f"{failure.message}\n{error}"
        return (
            failure.title == self.title
            and re.search(self.pattern, text, re.MULTILINE | re.DOTALL) is not None
        )


SHARED = (
    Allowed(
        REJECTED,
        r"chunking_strategy(\.static)?(\.chunk_overlap_tokens)?'?: .*('chunk_overlap_tokens' "
        r"must not exceed half|below minimum value)",
        "A static chunking strategy's overlap may be at most half its chunk size and "
        "is never negative (OpenAI's service refused both); the first ties two fields "
        "together, which a JSON Schema cannot state, and OpenAI's document states "
        "neither.",
    ),
    Allowed(
        REJECTED,
        r"^Invalid '.*': no vector store with id '.*'\.$",
        "A referenced vector store must exist in the project: state, not shape.",
    ),
    Allowed(
        REJECTED,
        r"^(The parts hold \d+ bytes, but the upload was created with 'bytes' = \d+\."
        r"|Invalid 'part_ids\[\d+\]': (no part '.*' in upload '\w+'|part '.*' is listed twice)\."
        r"|The md5 checksum '.*' does not match the uploaded bytes \(md5 '\w+'\)\."
        r"|Cannot \w+ upload '\w+': it is (already )?\w+\.)$",
        "Completing an upload depends on the parts it holds and on its state (their "
        "bytes must add up to the upload's, each listed once, the md5 theirs; an upload "
        "completed, cancelled or expired is over), which no schema can say: a 400 as "
        "OpenAI's service answered.",
    ),
    Allowed(
        REJECTED,
        r"^Batch \w+ has no files in progress; it cannot be cancelled\.$",
        "Cancelling a file batch depends on its state (nothing left in progress), which "
        "no schema can say: a 400 like cancelling a run that has ended.",
    ),
    Allowed(
        REJECTED,
        r"^('(in|nin)' needs 'value', a non-empty array|'\w+' compares numbers or strings, "
        r"not booleans|Compound filters may nest at most \d+ deep|A filter may hold at most "
        r"\d+ filters|'value' must be a string, number, boolean or array)\.$",
        "A search filter's `value` must suit its operator (an array for `in` and `nin` "
        "and only for them, no boolean for an ordering), which the schema cannot tie "
        "together; and a filter "
        "is bounded in depth and size so that evaluating it stays cheap.",
    ),
    Allowed(
        REJECTED,
        r"give 'vector_store_ids' or 'vector_stores', not both",
        "The spec allows one vector store on a thread or an assistant; naming one "
        "and making another inline is two (OpenAI's service refused it too).",
    ),
)


def real_ids(client: openai.OpenAI, path: str) -> dict[str, str]:
    """Objects for the fuzzer to aim at in ``path`` (made fresh: the operation before
    may have deleted the last ones), so that it reaches past the 404s."""
    ids: dict[str, str] = {}
    if "{assistant_id}" in path or "{thread_id}" in path:
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        assistant = client.beta.assistants.create(model="gpt-4o")
        ids |= {"assistant_id": assistant.id, "thread_id": thread.id}
        ids["message_id"] = client.beta.threads.messages.list(thread.id).data[0].id
        if "{run_id}" in path:
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
            )
            steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
            ids |= {"run_id": run.id, "step_id": steps.data[0].id}
    if "{file_id}" in path or "{vector_store_id}" in path:
        store = client.vector_stores.create(name="fuzzed")
        # A vector store file's id is its File's: one id serves /files and the store's.
        added = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=("a.txt", b"hello world"), poll_interval_ms=20
        )
        ids |= {"vector_store_id": store.id, "file_id": added.id}
        if "{batch_id}" in path:
            batch = client.vector_stores.file_batches.create(
                vector_store_id=store.id, file_ids=[added.id]
            )
            ids["batch_id"] = batch.id
    if "{upload_id}" in path:
        upload = client.uploads.create(
            bytes=3, filename="a.txt", mime_type="text/plain", purpose="assistants"
        )
        ids["upload_id"] = upload.id
    return ids
