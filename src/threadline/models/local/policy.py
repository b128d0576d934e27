"""Deciding whether a call the local model made is wanted, or whether it should answer.

Small models call tools they should not (made-up arguments, a repeat of a call whose
result is already in) and stop after one call where several were asked for. These
checks look at the call's arguments against the conversation.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from threadline.models.base import FunctionTool
from threadline.models.local.calls import ParsedCall

_WORD = re.compile(r"[a-z0-9]+(?:[.@'-][a-z0-9]+)*")
FILE_SEARCH = "file_search"  # the run engine's built-in search over the user's files
CODE_INTERPRETER = "code_interpreter"  # the run engine's built-in Python session
# Words by which a request asks for a computation, data work or a chart.
_COMPUTING = re.compile(
    r"\b(calculate|compute|computation|sum|total|average|mean|median|std|variance|"
    r"count|how many|csv|data|dataset|table|column|rows?|plot|chart|graph|histogram|"
    r"python|code|run|execute|factorial|prime|digits|power|sort|statistics)\b|[0-9]\s*[-+*/^%]",
    re.I,
)
# Words by which a request points at the user's own documents.
_DOCUMENTS = re.compile(
    r"\b(files?|documents?|docs?|notes?|uploaded|upload|handbook|manual|policy|policies|"
    r"guide|guidelines|report|reports|contract|spec|specification|readme|pdf|according to|"
    r"knowledge base|wiki|search|look (it|this|that) up)\b",
    re.I,
)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[,.]\d+)*")
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a": 1, "an": 1, "single": 1,
    "pair": 2, "couple": 2, "dozen": 12, "hundred": 100, "thousand": 1000,
}  # fmt: skip
_MORE = re.compile(r"\b(and|also|both|plus|then|each|all)\b|[,;&]", re.I)
# A code a request implies rather than says: a ticker, a currency or country code.
_CODE = re.compile(r"[A-Z]{2,5}")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 or w.isdigit()}


def _values(value: Any, schema: Any) -> Iterable[str]:
    """The free-form leaf values of some arguments (enum-bound ones and booleans skipped)."""
    spec = schema if isinstance(schema, dict) else {}
    if "enum" in spec or "const" in spec or isinstance(value, bool) or value is None:
        return
    if isinstance(value, dict):
        props = spec.get("properties") or {}
        for key, item in value.items():
            yield from _values(item, props.get(key))
    elif isinstance(value, list):
        for item in value:
            yield from _values(item, spec.get("items"))
    elif isinstance(value, float) and value.is_integer():
        yield str(int(value))
    else:
        yield str(value)


def _call_values(
    call: ParsedCall, tools: Sequence[FunctionTool], *, codes: bool = True, lower: bool = True
) -> list[str]:
    """The call's free-form values, lower-cased unless not ``lower``; without
    upper-case codes ("AMZN", "CHF") unless ``codes``."""
    schema = next((t.parameters for t in tools if t.name == call.name), None)
    values = [v.strip() for v in _values(call.arguments, schema) if v.strip()]
    return [v.lower() if lower else v for v in values if codes or not _CODE.fullmatch(v)]


def _value_grounded(value: str, text: str, words: set[str], strict: bool) -> bool:
    """Whether ``value`` is in ``text``, or all (``strict``) or more than half of its
    words are: one word of two ("Hello, world!" for "how many languages are spoken in
    the world?") is not enough. Leniently a word of five letters or more also counts
    when the conversation has one a letter away from it: the model writes a place as
    it is spelt there ("Lisboa" for "Lisbon") or corrects a typo."""
    parts = _words(value)
    if strict:
        hits = len(parts & words)
    else:
        hits = sum(part in words or _near(part, words) for part in parts)
    return value in text or (
        bool(parts) and (hits == len(parts) if strict else hits * 2 > len(parts))
    )


def _abbreviates(value: str, words: set[str]) -> bool:
    """Whether ``value`` is an upper-case code of three to five letters made of a
    longer word's letters, in order, from its first to its last: a ticker for the
    name the message says ("MSFT" for "Microsoft", "AMZN" for "Amazon"). The word
    must be two letters longer than the code, so that "used" is no "USD" and
    "Amazing" no "AMZN"."""
    if not (3 <= len(value) <= 5 and _CODE.fullmatch(value)):
        return False
    code = value.lower()
    return any(
        len(word) >= len(code) + 2
        and word[0] == code[0]
        and word[-1] == code[-1]
        and _in_order(code[1:-1], word[1:-1])
        for word in words
    )


def _in_order(letters: str, word: str) -> bool:
    rest = iter(word)
    return all(letter in rest for letter in letters)


def _near(word: str, words: set[str]) -> bool:
    """Whether ``words`` has one of five letters or more, with the same first three,
    one edit (a letter changed, added or dropped) from ``word``."""
    if len(word) < 5:
        return False
    return any(
        len(other) >= 5 and other[:3] == word[:3] and _one_edit(word, other) for other in words
    )


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def grounded(
    call: ParsedCall, tools: Sequence[FunctionTool], context: str, *, strict: bool = False
) -> bool:
    """Whether the call's arguments come from the conversation rather than thin air.

    Small models asked something no tool helps with tend to call a tool anyway, with
    made-up arguments. A value is grounded when it appears in ``context`` or enough of
    its words do. Leniently (the first call) half the values must be grounded, each by
    more than half its words, and upper-case codes are not counted beside other values:
    a request names a currency ("80 dollars in euros") and the call carries its code
    (``USD``). A call of codes alone is judged on them; a code made of a longer
    word's letters is grounded by the word (``MSFT`` by "Microsoft",
    ``_abbreviates``). Strictly (extra parallel calls) every value counts and must be
    grounded by all of its words. Calls without free-form arguments always pass.
    """
    values = _call_values(call, tools, codes=strict, lower=False)
    if not values:
        # Only codes, or nothing free-form: codes count after all ("tell me a joke"
        # is not get_stock_price(symbol="AAPL")).
        values = _call_values(call, tools, lower=False)
        if not values:
            return True
    text, words = context.lower(), _words(context)
    hits = sum(
        _value_grounded(v.lower(), text, words, strict) or _abbreviates(v, words) for v in values
    )
    return hits == len(values) if strict else hits * 2 >= len(values)


def carries_values(call: ParsedCall, tools: Sequence[FunctionTool]) -> bool:
    """Whether the call has a free-form argument value (not only enum values,
    booleans, or nothing): something of the request's that it acts on."""
    return bool(_call_values(call, tools))


def acts_on(call: ParsedCall, text: str) -> bool:
    """Whether one of the call's argument values, an enum value included, is in
    ``text``, by more than half of its words: "What about humidity there?" names the
    sensor of ``get_sensor_reading(room="bathroom", sensor="humidity")``, "Thanks!"
    nothing of it."""
    words = _words(text)
    for value in _values(call.arguments, None):
        parts = _words(value.lower())  # "living_room" is "living" and "room"
        if parts and len(parts & words) * 2 > len(parts):
            return True
        if _abbreviates(value.strip(), words):
            return True  # "And Microsoft?" names get_stock_price(symbol="MSFT")
    return False


def written_numbers(text: str) -> set[float]:
    """The numbers ``text`` writes in digits ("1,200", "6.5", "-3")."""
    found = set()
    for match in _NUMBER.findall(text):
        digits = match.replace(",", "")
        with contextlib.suppress(ValueError):
            found.add(float(digits))
        with contextlib.suppress(ValueError):  # "1,5" is 1.5 in much of Europe
            found.add(float(match.replace(",", ".")))
    return found


def mentioned_numbers(context: str) -> set[float]:
    """The numbers a conversation mentions: digits ("1,200", "6.5", "-3") and small
    number words ("two", "a dozen")."""
    words = {float(n) for w, n in _NUMBER_WORDS.items() if re.search(rf"\b{w}\b", context, re.I)}
    return written_numbers(context) | words


def without_made_up_numbers(
    call: ParsedCall, tools: Sequence[FunctionTool], context: str
) -> ParsedCall | None:
    """The call without the optional numeric arguments that nobody mentioned, or
    ``None`` when a required one was made up.

    Asked "is it cold in Oslo?", a small model fills ``days: 3`` or ``max_price: 100``
    from thin air, and asked something no tool helps with ("how much water should I
    drink?") it calls with a number of its own. A number counts as mentioned when the
    conversation has it in digits or as a small number word."""
    schema = next((t.parameters for t in tools if t.name == call.name), None) or {}
    props = schema.get("properties") if isinstance(schema, dict) else None
    required = set(schema.get("required") or []) if isinstance(schema, dict) else set()
    numbers: set[float] | None = None
    kept: dict[str, Any] = {}
    for key, value in call.arguments.items():
        spec = (props or {}).get(key) if isinstance(props, dict) else None
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (isinstance(spec, dict) and ("enum" in spec or "const" in spec)):
            kept[key] = value
            continue
        if numbers is None:
            numbers = mentioned_numbers(context)
        if float(value) in numbers:
            kept[key] = value
        elif key in required:
            return None
    return call if len(kept) == len(call.arguments) else ParsedCall(call.name, kept)


def adds_information(
    call: ParsedCall, earlier: Sequence[ParsedCall], tools: Sequence[FunctionTool], context: str
) -> bool:
    """Whether an extra parallel call is wanted: strictly grounded, and not a variant of
    an earlier call (it must carry some value that none of them has)."""
    if call.key() in {c.key() for c in earlier} or not grounded(call, tools, context, strict=True):
        return False
    seen = {v for c in earlier for v in _call_values(c, tools)}
    return any(v not in seen for v in _call_values(call, tools))


FIRST_CALL_TRIES = 2
"""How many functions the auto tool choice tries for a first call before answering."""


def retry_tools(
    tools: Sequence[FunctionTool], rejected: Collection[str]
) -> tuple[FunctionTool, ...]:
    """The functions a rejected first call may be tried again with: the ones not yet
    rejected, while fewer than ``FIRST_CALL_TRIES`` were; empty when none is left.

    The small model often writes the first function of the list, or a neighbour of the
    right one, for a request that does not name it ("how much is 80 dollars in euros?"
    as ``get_weather(city="London")``); the checks reject that call, and the right
    function is usually its second choice. The built-in file_search and
    code_interpreter are not tried again: a question refused one function is not
    turned into a search or a program."""
    if not rejected or len(rejected) >= FIRST_CALL_TRIES:
        return ()
    rest = tuple(t for t in tools if t.name not in rejected)
    if all(t.name in (FILE_SEARCH, CODE_INTERPRETER) for t in rest):
        return ()
    return tuple(t for t in rest if t.name not in (FILE_SEARCH, CODE_INTERPRETER))


def may_want_more_calls(question: str) -> bool:
    """Whether the request could need several calls ("Paris and London", "A, B")."""
    return bool(_MORE.search(question))


def all_repeats(calls: Iterable[ParsedCall], previous: frozenset[tuple[str, str]]) -> bool:
    """True when every call was already made earlier in the conversation."""
    keys = [c.key() for c in calls]
    return bool(keys) and all(k in previous for k in keys)


def refers_to_documents(question: str) -> bool:
    """Whether the request points at the user's documents ("according to our
    handbook", "search my notes"): with file_search offered, it should search."""
    return bool(_DOCUMENTS.search(question))


def search_worthy(call: ParsedCall) -> bool:
    """Whether a file_search call looks for words (a query of bare numbers and
    symbols, "7 * 6", is a question the model can answer itself)."""
    query = call.arguments.get("query") if isinstance(call.arguments, dict) else None
    return isinstance(query, str) and bool(re.search(r"[^\W\d_]{3,}", query))


def code_worthy(call: ParsedCall, question: str) -> bool:
    """Whether a code_interpreter call is wanted: it carries code, and the request
    asks for a computation, data work or a chart (its code is never "grounded" in
    the conversation, so that check does not apply)."""
    code = call.arguments.get("input") if isinstance(call.arguments, dict) else None
    return isinstance(code, str) and bool(code.strip()) and bool(_COMPUTING.search(question))


_REFUSAL_OPENINGS = frozenset({"i", "i'm", "sorry", "unfortunately", "apolog", "apologies"})


def opens_refusal(piece: str) -> bool:
    """Whether a reply's first token (its text) likely opens a refusal ("I'm sorry,
    but I can't assist with that"). An answer from tool results need not open so."""
    return piece.strip().lower() in _REFUSAL_OPENINGS
