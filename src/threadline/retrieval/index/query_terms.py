"""A user's query made into full-text search syntax that cannot be a syntax error.

The query is cut into words (letters and digits, any script); each word becomes a
quoted term and the terms are OR-ed, as a search engine does for free text: FTS5
ranks by bm25 and PostgreSQL by ``ts_rank_cd``, so chunks with more (and rarer) of
the words come first. Nothing of the user's text reaches the FTS parser unquoted:
operators (``AND``, ``NEAR``, ``-``, ``*``, ``:``, quotes, brackets) become plain
words or vanish.
"""

from __future__ import annotations

import re

MAX_TERMS = 32
"""Words of a query searched at most (the first ones, duplicates aside)."""
MAX_TERM_LENGTH = 64

_WORD = re.compile(r"[^\W_]+")


def query_terms(query: str) -> list[str]:
    """The distinct words of ``query``, lower-cased, in order, at most ``MAX_TERMS``."""
    terms: dict[str, None] = {}
    for match in _WORD.finditer(query):
        word = match.group().lower()[:MAX_TERM_LENGTH]
        terms.setdefault(word, None)
        if len(terms) == MAX_TERMS:
            break
    return list(terms)


def fts5_query(terms: list[str]) -> str:
    """An FTS5 ``MATCH`` expression: any of ``terms``, each a quoted string."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery_text(terms: list[str], operator: str = "|") -> str:
    """The text of a PostgreSQL ``to_tsquery``: any (``|``) or all (``&``) of
    ``terms``, each quoted."""
    quoted = ("'" + term.replace("'", "''").replace("\\", "") + "'" for term in terms)
    return f" {operator} ".join(quoted)
