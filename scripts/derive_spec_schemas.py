"""Derive the JSON schemas the tests check wire objects against from OpenAI's spec.

    python scripts/derive_spec_schemas.py SPEC.yaml [--commit SHA] [--out FILE] [--check]
    python scripts/derive_spec_schemas.py SPEC.yaml --served [--commit SHA] [--check]

Reads ``components.schemas`` of the OpenAPI document ``SPEC.yaml``, keeps the
schemas named in ``ROOTS`` and every schema they reach through ``$ref``, and
writes them to ``tests/support/spec_schemas.json`` (or ``--out``) with the
spec's sha256, its ``info.version`` and, when given, the commit it was taken
from. The tests load only that file, so a clone runs its suite with nothing
beside it. ``--check`` writes nothing and fails when the file is not what the
spec gives (a stale file, or one edited by hand).

The document mixes OpenAPI 3.1 nullability with the 3.0 keyword
``nullable: true`` (plain, next to ``$ref``, and as
``allOf: [{$ref: ...}, {nullable: true}]``); all three are written out as
``anyOf: [..., {type: null}]``, so that a JSON-schema validator reads them.

``--served`` derives what the server's own ``/openapi.json`` declares instead:
the ``200`` response of each of OpenAI's operations that threadline serves (the
paths ``SERVED_PATHS`` matches), by ``operationId``, with every schema they reach,
into ``src/threadline/schemas/openai_responses.json`` (``api/openapi.py`` reads it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

REF_PREFIX = "#/components/schemas/"
FORMAT = 1
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "support" / "spec_schemas.json"
SERVED_OUT = REPO / "src" / "threadline" / "schemas" / "openai_responses.json"
SERVED_PATHS = re.compile(r"^/(assistants|threads|files|uploads|vector_stores)(/.*)?$")
"""OpenAI's paths that threadline serves: the Assistants v2 family, files and uploads."""
SERVED_METHODS = ("get", "post", "delete")

# What the tests check objects against (each with its whole ``$ref`` closure).
ROOTS = (
    # objects
    "AssistantObject",
    "ThreadObject",
    "MessageObject",
    "RunObject",
    "RunStepObject",
    "OpenAIFile",
    "Upload",
    "UploadPart",
    "VectorStoreObject",
    "VectorStoreFileObject",
    "VectorStoreFileBatchObject",
    "VectorStoreSearchResultsPage",
    "VectorStoreFileContentResponse",
    # parts checked on their own: tool call details, annotations, content
    "RunStepDetailsToolCallsFileSearchObject",
    "RunStepDetailsToolCallsCodeObject",
    "MessageContentTextAnnotationsFileCitationObject",
    "MessageContentTextAnnotationsFilePathObject",
    "MessageContentImageFileObject",
    # lists and deletions
    "ListAssistantsResponse",
    "ListMessagesResponse",
    "ListRunsResponse",
    "ListRunStepsResponse",
    "ListFilesResponse",
    "ListVectorStoresResponse",
    "ListVectorStoreFilesResponse",
    "DeleteAssistantResponse",
    "DeleteThreadResponse",
    "DeleteMessageResponse",
    "DeleteFileResponse",
    "DeleteVectorStoreResponse",
    "DeleteVectorStoreFileResponse",
    # streams and errors
    "AssistantStreamEvent",
    "ErrorResponse",
)


class SpecError(Exception):
    """The spec lacks something the tests need, or is not an OpenAPI document."""


def _is_nullable_marker(node: Any) -> bool:
    """``{nullable: true}`` alone (maybe described): the ``allOf`` member form."""
    if not isinstance(node, dict) or node.get("nullable") is not True:
        return False
    return set(node) <= {"nullable", "description"}


def normalise(node: Any) -> Any:
    """``node`` with every OpenAPI 3.0 ``nullable: true`` turned into ``anyOf [.., null]``."""
    if isinstance(node, list):
        return [normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: normalise(value) for key, value in node.items() if key != "nullable"}
    nullable = node.get("nullable") is True
    all_of = node.get("allOf")
    if isinstance(all_of, list) and any(_is_nullable_marker(m) for m in all_of):
        out["allOf"] = [normalise(m) for m in all_of if not _is_nullable_marker(m)]
        nullable = True
    if nullable:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def refs(node: Any) -> Iterator[str]:
    """The component names ``node`` refers to (``$ref: #/components/schemas/X``)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref[len(REF_PREFIX) :]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def closure(schemas: dict[str, Any], roots: Iterable[str]) -> dict[str, Any]:
    """``roots`` and every schema they reach, by name, sorted."""
    reached: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        if name not in schemas:
            raise SpecError(f"the spec has no schema {name!r}")
        reached[name] = schemas[name]
        pending.extend(refs(reached[name]))
    return dict(sorted(reached.items()))


def derive(
    spec: bytes, *, name: str, commit: str | None = None, roots: Iterable[str] = ROOTS
) -> Any:
    """The document written to ``spec_schemas.json`` for the spec ``spec``."""
    document = yaml.load(spec, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        components = document["components"]["schemas"]
        version = document["info"]["version"]
    except (TypeError, KeyError) as exc:
        raise SpecError(f"not an OpenAPI document with components.schemas: {exc}") from exc
    roots = list(roots)
    kept = normalise(closure(components, roots))
    # YAML reads some examples as dates: the JSON file holds them as strings.
    kept = json.loads(json.dumps(kept, default=str))
    return {
        "format": FORMAT,
        "source": {
            "file": name,
            "sha256": hashlib.sha256(spec).hexdigest(),
            "info_version": str(version),
            "openapi": str(document.get("openapi", "")),
            "commit": commit,
        },
        "derived_by": "scripts/derive_spec_schemas.py",
        "roots": sorted(roots),
        "schemas": kept,
    }


def served(spec: bytes, *, name: str, commit: str | None = None) -> Any:
    """The document written to ``openai_responses.json``: each served operation's
    ``200`` content by ``operationId``, and the schemas those reach."""
    document = yaml.load(spec, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        paths = document["paths"]
    except (TypeError, KeyError) as exc:
        raise SpecError(f"not an OpenAPI document with paths: {exc}") from exc
    operations: dict[str, Any] = {}
    for path, methods in paths.items():
        if not SERVED_PATHS.match(path):
            continue
        for method in SERVED_METHODS:
            if method in methods:
                operation = methods[method]
                content = operation["responses"]["200"].get("content", {})
                operations[operation["operationId"]] = normalise(content)
    if not operations:
        raise SpecError("the spec has none of the operations threadline serves")
    roots = sorted({*refs(operations), "ErrorResponse"})
    derived = derive(spec, name=name, commit=commit, roots=roots)
    derived["operations"] = dict(sorted(operations.items()))
    return derived


def render(derived: Any) -> str:
    return json.dumps(derived, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="OpenAI's OpenAPI YAML document")
    parser.add_argument("--commit", help="the openai/openai-openapi commit it was taken from")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument(
        "--served", action="store_true", help="what the server's own document declares"
    )
    args = parser.parse_args(argv)
    args.out = args.out or (SERVED_OUT if args.served else DEFAULT_OUT)
    try:
        spec = args.spec.read_bytes()
        if args.served:
            text = render(served(spec, name=args.spec.name, commit=args.commit))
        else:
            text = render(derive(spec, name=args.spec.name, commit=args.commit, roots=ROOTS))
    except (OSError, SpecError, yaml.YAMLError) as exc:
        print(f"derive_spec_schemas: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is not what {args.spec} gives: re-derive it", file=sys.stderr)
            return 1
        print(f"{args.out} matches {args.spec}")
        return 0
    partial = args.out.with_suffix(".tmp")
    partial.write_text(text)
    partial.replace(args.out)
    count = len(json.loads(text)["schemas"])
    print(f"wrote {args.out}: {count} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
