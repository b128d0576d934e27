"""Schemathesis against OpenAI's own spec for the Assistants and vector store
operations (``openai-assistants.json``, written by ``scripts/openai_spec_subset.py``), on both
engines, with all its checks: the server answers what a client generated from
OpenAI's contract expects. Where OpenAI's spec and OpenAI's service differed the
server follows the service; those findings are in ``ALLOWED`` with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.support.fuzz import REJECTED, SHARED, Allowed, real_ids

SPEC = Path(__file__).with_name("openai-assistants.json")
MAX_EXAMPLES = 8
OPERATIONS = 39  # 23 Assistants and 16 vector store operations

EXCLUDED = {
    status_code_conformance: "OpenAI's spec documents only 200 (and 429) for these "
    "operations; its service answered 400, 401 and 404 in the error envelope, and so "
    "does the server (its own document lists them: test_schemathesis.py).",
}


ALLOWED = (
    *SHARED,
    Allowed(
        "Response violates schema",
        r"null is not of type \"string\".*(first_id|last_id)|(first_id|last_id).*null is not",
        "An empty list's first_id and last_id are null: what OpenAI's service sent "
        "and its SDKs type as optional, though the spec says string.",
    ),
    Allowed(
        "Response violates schema",
        r"^null is not of type .*Schema at (\S*/properties/(name|expires_at|status_details)|"
        r"/components/schemas/VectorStoreExpirationAfter):",
        "A store made without a name, a store or file with no expiry, a file's deprecated "
        "status_details: `null` when unset. The server's own document declares each of "
        "these (api.openapi.DEVIATIONS, checked by test_schemathesis.py).",
    ),
    Allowed(
        "Response violates schema",
        r'^"evals" is not one of ',
        "The spec lets a file be uploaded for `evals` but its File object does not list "
        "that purpose; the file reports the purpose it was uploaded with (declared in "
        "api.openapi.DEVIATIONS).",
    ),
    Allowed(
        REJECTED,
        r"^Unknown parameter: ",
        "Where OpenAI's spec leaves objects open (no additionalProperties: false), "
        "its service still refused fields it did not know, by name; so does the server.",
    ),
    Allowed(
        REJECTED,
        r"^Invalid 'limit': integer (above maximum|below minimum) value",
        "The spec gives `limit` its range 1 to 100 in prose only; OpenAI's service "
        "refused other values with these words.",
    ),
    Allowed(
        REJECTED,
        r"^Invalid '[^']*(model|_id|name|query|key)': empty string|"
        r"^Invalid '(query|filters(\.filters\[\d+\])*\.filters)': empty array",
        "An empty model, object id (assistant, file), name, search query (or list of "
        "queries), filter key or compound filter names nothing; OpenAI's service refused "
        "an empty model, id or name. The server's own document gives each its minimum.",
    ),
    Allowed(
        REJECTED,
        r"'filters(\.filters\[\d+\])*\.filters\[\d+\](\.\w+)?'",
        "The spec's CompoundFilter names itself as `$recursiveRef: '#'`, which in an "
        "OpenAPI document is the document's root, not the filter: a generator reads a "
        "nested filter as anything at all. The spec's text says a nested filter is a "
        "ComparisonFilter or a CompoundFilter, and the server holds to that (the server's "
        "own document says so, and test_schemathesis.py fuzzes nested filters by it).",
    ),
    Allowed(
        REJECTED,
        r"^Invalid request body: Exactly one of 'file_ids' and 'files' must be given\.$",
        "The spec's schema lets a file batch have both lists; its text says they exclude "
        "each other, and the server's own document says oneOf.",
    ),
    Allowed(
        REJECTED,
        r"^Invalid '[^']*name': string does not match pattern",
        "The spec gives the pattern of function and JSON schema names (a-z, A-Z, "
        "0-9, _ and -, at most 64) in prose only; OpenAI's service refused others.",
    ),
    Allowed(
        REJECTED,
        r"null characters? (or an unpaired surrogate|are not supported)",
        "Text with NUL or a lone surrogate cannot be stored (PostgreSQL text holds no "
        "NUL; a lone surrogate has no UTF-8 form): a 400 naming the field.",
    ),
    Allowed(
        REJECTED,
        r"Invalid '(after|before)': no [\w ]+ with id '.*' in this list\.",
        "A cursor must name an object of the list, as OpenAI's service required.",
    ),
    Allowed(
        REJECTED,
        r"Cannot cancel run with status|Runs in status .* do not accept tool outputs",
        "Depends on the run's state, which no schema can say; a 400 from OpenAI too.",
    ),
    Allowed(
        REJECTED,
        r"no file with id '.*'",
        "A referenced file must exist in the project: state, not shape.",
    ),
)


def _error(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""


def test_the_server_keeps_openais_contract(own_server: Any) -> None:
    client = own_server.client()
    auth = {"Authorization": f"Bearer {client.api_key}", "OpenAI-Beta": "assistants=v2"}
    base = own_server.url  # OpenAI's paths are under its server's /v1
    schema = schemathesis.openapi.from_path(SPEC)
    operations = [_operation(result) for result in schema.get_all_operations()]
    assert len(operations) == OPERATIONS
    found: dict[tuple[str, str], list[str]] = {}
    sent: dict[str, int] = {}

    def fuzz(strategy: st.SearchStrategy[schemathesis.Case[Any]]) -> None:
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def one(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=base, headers=auth, timeout=30)
            sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
            failures: list[Failure]
            try:
                case.validate_response(response, headers=auth, excluded_checks=list(EXCLUDED))
            except FailureGroup as group:
                failures = [e for e in group.exceptions if isinstance(e, Failure)]
            except Failure as single:
                failures = [single]
            else:
                return
            error = _error(response)
            for failure in failures:
                if not any(a.covers(failure, error) for a in ALLOWED):
                    found.setdefault((case.operation.label, failure.title), []).append(
                        f"{failure.message[:300]}\n{response.text[:300]}\n"
                        + case.as_curl_command(auth)
                    )

        one()

    for operation in operations:
        ids = real_ids(client, operation.path)
        wanted = {k: v for k, v in ids.items() if "{" + k + "}" in operation.path}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode.is_negative and not (len(operation.body) or len(operation.query)):
                continue
            fuzz(
                operation.as_strategy(
                    generation_mode=mode, path_parameters=wanted or None, headers=auth
                )
            )

    total = sum(sent.values())
    print(f"\nschemathesis (OpenAI's spec): {total} requests over {len(sent)} operations")
    report = [
        f"{op}: {title} ({len(seen)}x), e.g.\n{seen[0]}" for (op, title), seen in found.items()
    ]
    assert not found, "\n\n".join(report)
    assert len(sent) == OPERATIONS
    assert total >= OPERATIONS * MAX_EXAMPLES


def _operation(result: Any) -> Any:
    """An operation of the schema (``Ok``), or the reason it could not be read."""
    if isinstance(result, Err):
        raise AssertionError(f"unreadable operation: {result.err()}")
    return result.ok()
