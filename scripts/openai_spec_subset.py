"""Write the part of OpenAI's OpenAPI document that threadline's schemathesis run
against OpenAI's contract covers (the Assistants v2 and vector store operations)
to ``tests/fuzz/openai-assistants.json``, with every component it refers to.

    python scripts/openai_spec_subset.py path/to/openai-openapi.yaml

The document is OpenAI's (https://github.com/openai/openai-openapi, MIT); the
subset is checked in so that the tests need nothing from outside the repository.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

PATHS = re.compile(r"^/(assistants|threads|vector_stores)(/.*)?$")
OUT = Path(__file__).resolve().parents[1] / "tests" / "fuzz" / "openai-assistants.json"


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        for item in value.values():
            found |= _refs(item)
        return found
    if isinstance(value, list):
        return set().union(*(_refs(item) for item in value)) if value else set()
    return set()


def _without_examples(value: Any) -> Any:
    """Drop ``x-oaiMeta`` (documentation examples, most of the size)."""
    if isinstance(value, dict):
        return {k: _without_examples(v) for k, v in value.items() if k != "x-oaiMeta"}
    if isinstance(value, list):
        return [_without_examples(item) for item in value]
    return value


def subset(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {p: ops for p, ops in spec["paths"].items() if PATHS.match(p)}
    components: dict[str, dict[str, Any]] = {}
    pending = _refs(paths)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, section, name = ref.removeprefix("#/").split("/", 2)
        value = spec["components"][section][name]
        components.setdefault(section, {})[name] = value
        pending |= _refs(value)
    components["securitySchemes"] = {
        "ApiKeyAuth": spec["components"]["securitySchemes"]["ApiKeyAuth"]
    }
    return {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "title": spec["info"]["title"] + " (Assistants subset)"},
        "servers": spec.get("servers", []),
        "security": [{"ApiKeyAuth": []}],
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }


def main() -> None:
    spec = yaml.safe_load(Path(sys.argv[1]).read_text())
    OUT.write_text(json.dumps(_without_examples(subset(spec)), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
