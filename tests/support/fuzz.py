"""What both schemathesis suites share: the allow-list's shape, and the findings that
are state or storage, not shape, whichever document the requests come from."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
        r"chunking_strategy(\.static)?'?: .*('chunk_overlap_tokens' must not exceed half|"
        r"below minimum value)",
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
        r"give 'vector_store_ids' or 'vector_stores', not both",
        "The spec allows one vector store on a thread or an assistant; naming one "
        "and making another inline is two (OpenAI's service refused it too).",
    ),
)
