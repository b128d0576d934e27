"""Schemathesis against the server's own OpenAPI document, every operation, on both
engines, with all of schemathesis's checks: no 5xx, every status, content type,
header and body documented, valid data accepted and invalid data refused, auth
not ignored, ``Allow`` right on a 405. What it finds either is fixed or is in
``ALLOWED`` with the reason.

Bounded: ``MAX_EXAMPLES`` per operation and generation mode, once with generated
path parameters and once with the ids of real objects. The number of requests sent
is printed (``-s`` shows it) and checked."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err

from tests.support.fuzz import REJECTED, SHARED, Allowed, real_ids

MAX_EXAMPLES = 10
# OpenAI's 23 Assistants, 5 Files, 4 Uploads and 16 vector store operations, and
# threadline's own resumeRunEvents and listThreads
OPERATIONS = 50


ALLOWED = (
    *SHARED,
    Allowed(
        "Schema-violating request accepted",
        r"violates `type` at /properties/file ",
        "In multipart/form-data every part is bytes: a `file` part whose bytes read "
        "as a number is still a file of those bytes (OpenAI's service stored it too).",
    ),
    Allowed(
        REJECTED,
        r"null characters? (or an unpaired surrogate|are not supported)",
        "Text with NUL or a lone surrogate is valid JSON Schema input but cannot be "
        "stored (PostgreSQL text holds no NUL; a lone surrogate has no UTF-8 form): "
        "refused with a 400 naming the field rather than stored differently.",
    ),
    Allowed(
        REJECTED,
        r"^Invalid '(after|before)': no [\w ]+ with id '.*' in this list\.$",
        "A cursor must name an object of the list; any string is schema-valid, but "
        "OpenAI's service also refused cursors that name nothing.",
    ),
    Allowed(
        REJECTED,
        r"^(Cannot cancel run with status|Runs in status .* do not accept tool outputs)",
        "Depends on the run's state (already ended, not waiting for outputs), which "
        "no schema can say; OpenAI's service answered these with a 400 too.",
    ),
    Allowed(
        REJECTED,
        r"^Invalid '.*': no file with id '.*'\.$",
        "A referenced file must exist in the project: state, not shape.",
    ),
    Allowed(
        REJECTED,
        r"^Missing required parameter: 'expires_after\.(anchor|seconds)'\.$",
        "A file's `expires_after` needs both its fields; in a form they are two "
        "separate fields (`expires_after[anchor]`, `expires_after[seconds]`), which the "
        "document cannot tie together.",
    ),
    Allowed(
        "Schema-violating request accepted",
        r"^Request body too large: the limit is \d+ bytes\.$",
        "Refused, with a 413: a generated body of tens of megabytes is over "
        "`THREADLINE_MAX_BODY_BYTES` before its shape is looked at (schemathesis "
        "counts only some 4xx statuses as refusals, and not 413).",
    ),
    Allowed(
        REJECTED,
        r"^Invalid 'bytes': an upload may be at most \d+ bytes",
        "An upload's `bytes` above the server's `THREADLINE_MAX_UPLOAD_BYTES`: a "
        "setting, not shape (OpenAI's service refused uploads over its 8 GB too).",
    ),
)


def _allowed(failure: Failure, response: Any) -> bool:
    try:
        error = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        error = ""  # an accepted request: the finding's own message is matched
    return any(allowed.covers(failure, error) for allowed in ALLOWED)


def fuzz(
    strategy: st.SearchStrategy[schemathesis.Case[Any]],
    root: str,
    auth: dict[str, str],
    sent: dict[str, int],
    found: dict[tuple[str, str], list[str]],
) -> None:
    """Send ``MAX_EXAMPLES`` cases drawn from ``strategy``; collect what is not allowed."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=root, headers=auth, timeout=30)
        label = case.operation.label
        sent[label] = sent.get(label, 0) + 1
        failures: list[Failure]
        try:
            case.validate_response(response, headers=auth)
        except FailureGroup as group:
            failures = [e for e in group.exceptions if isinstance(e, Failure)]
        except Failure as single:
            failures = [single]
        else:
            return
        for failure in (f for f in failures if not _allowed(f, response)):
            found.setdefault((label, failure.title), []).append(
                f"{failure.message[:300]}\n{response.text[:400]}\n{case.as_curl_command(auth)}"
            )

    run()


def test_the_server_keeps_its_own_contract(own_server: Any) -> None:
    # Retries: between two uses the client's kept-alive connection idles while a
    # fuzzing round runs, and the server may close it meanwhile.
    client = own_server.client().with_options(max_retries=2)
    auth = {"Authorization": f"Bearer {client.api_key}"}
    root = own_server.url.removesuffix("/v1")
    schema = schemathesis.openapi.from_url(f"{root}/openapi.json")
    operations = [_operation(result) for result in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert len(labels) == OPERATIONS, labels
    sent: dict[str, int] = {}
    found: dict[tuple[str, str], list[str]] = {}

    for operation in operations:
        ids = real_ids(client, operation.path)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for aimed in (False, True):
                wanted = {
                    name: value
                    for name, value in ids.items()
                    if aimed and "{" + name + "}" in operation.path
                }
                if aimed and not wanted:
                    continue
                if mode.is_negative and not (len(operation.body) or len(operation.query)):
                    continue  # a path and the key: nothing that can be made invalid
                strategy = operation.as_strategy(
                    generation_mode=mode, path_parameters=wanted or None, headers=auth
                )
                fuzz(strategy, root, auth, sent, found)

    total = sum(sent.values())
    print(f"\nschemathesis: {total} requests over {len(sent)} operations: {sent}")
    report = [
        f"{label}: {title} ({len(seen)}x), e.g.\n{seen[0]}"
        for (label, title), seen in found.items()
    ]
    assert not found, "\n\n".join(report)
    assert set(sent) == set(labels)
    assert total >= len(labels) * MAX_EXAMPLES


def _operation(result: Any) -> Any:
    """An operation of the schema (``Ok``), or the reason it could not be read."""
    if isinstance(result, Err):
        raise AssertionError(f"unreadable operation: {result.err()}")
    return result.ok()
