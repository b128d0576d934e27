"""The local model and file_search: when a request gets a search first, which
calls are refused, and the answer prompt asking for citation markers."""

from __future__ import annotations

import pytest

from threadline.engine.tools.file_search import DESCRIPTION, PARAMETERS, render
from threadline.models.base import ChatMessage, FunctionTool, ModelRequest, ToolCall
from threadline.models.local.calls import ParsedCall
from threadline.models.local.planning import plan_request
from threadline.models.local.policy import refers_to_documents, search_worthy
from threadline.models.local.prompt import render_answer

SEARCH = FunctionTool("file_search", DESCRIPTION, PARAMETERS)
WEATHER = FunctionTool("get_weather", "Weather.", {"type": "object", "properties": {}})


@pytest.mark.parametrize(
    ("question", "refers"),
    [
        ("According to our handbook, how many vacation days?", True),
        ("What does the refund policy document say?", True),
        ("Search my notes for the ferry time", True),
        ("What is 7 times 6?", False),
        ("Hi there!", False),
    ],
)
def test_refers_to_documents(question: str, refers: bool) -> None:
    assert refers_to_documents(question) is refers


def test_a_question_about_the_documents_is_searched_first() -> None:
    ask = [ChatMessage("user", "What does our travel policy say about taxis?")]
    plan = plan_request(ModelRequest("m", ask, tools=[WEATHER, SEARCH]))
    assert plan.search_query == "What does our travel policy say about taxis?"
    # Without file_search offered, or for another question, the model decides.
    assert plan_request(ModelRequest("m", ask, tools=[WEATHER])).search_query is None
    other = [ChatMessage("user", "What is 7 times 6?")]
    assert plan_request(ModelRequest("m", other, tools=[SEARCH])).search_query is None
    none = ModelRequest("m", ask, tools=[SEARCH], tool_choice="none")
    assert plan_request(none).search_query is None


def test_once_searched_the_model_answers() -> None:
    call = ToolCall("call_1", "file_search", '{"query": "taxis"}')
    messages = [
        ChatMessage("user", "What does our travel policy say about taxis?"),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", "nothing", tool_call_id="call_1"),
    ]
    plan = plan_request(ModelRequest("m", messages, tools=[SEARCH]))
    assert (plan.mode, plan.search_query) == ("auto", None)


def test_a_search_for_bare_numbers_is_not_worth_it() -> None:
    assert not search_worthy(ParsedCall("file_search", {"query": "7 * 6"}))
    assert not search_worthy(ParsedCall("file_search", {}))
    assert search_worthy(ParsedCall("file_search", {"query": "taxi receipts 2024"}))


def test_the_answer_prompt_asks_for_the_results_markers() -> None:
    results = [
        {"file_id": "f1", "file_name": "policy.md", "score": 0.8,
         "content": [{"type": "text", "text": "Taxis are refunded."}]}
    ]  # fmt: skip
    call = ToolCall("call_1", "file_search", '{"query": "taxis"}')
    messages = [
        ChatMessage("user", "What does our travel policy say about taxis?"),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", render(0, results, query="taxis"), tool_call_id="call_1"),
    ]
    prompt = render_answer(messages)
    assert "Taxis are refunded." in prompt
    assert "Cite each result you use with its marker, such as 【0:0†policy.md】." in prompt
    plain = [*messages[:2], ChatMessage("tool", "18C", tool_call_id="call_1")]
    assert "Cite" not in render_answer(plain)
