"""The playground's filters and form parsing: annotations marked and escaped,
images as data URIs, assistant forms into request bodies and back."""

from __future__ import annotations

import pytest

from threadline.web import forms
from threadline.web.render import annotated, data_uri


def _note(value: str, marker: str) -> dict[str, object]:
    start = value.index(marker)
    return {
        "type": "file_citation",
        "text": marker,
        "start_index": start,
        "end_index": start + len(marker),
    }


def test_annotations_are_marked_numbered_and_escaped() -> None:
    value = "See <doc>【0†a.txt】 and more【1†b.txt】."
    text = {
        "value": value,
        "annotations": [_note(value, "【0†a.txt】"), _note(value, "【1†b.txt】")],
    }
    html = str(annotated(text))
    assert html.startswith("See &lt;doc&gt;<mark")
    assert "【0†a.txt】<sup>1</sup></mark> and more" in html
    assert html.endswith("【1†b.txt】<sup>2</sup></mark>.")


def test_an_annotation_out_of_range_is_left_unmarked() -> None:
    text = {"value": "short", "annotations": [{"start_index": 9, "end_index": 3}]}
    assert str(annotated(text)) == "short"


def test_images_become_data_uris_by_their_bytes() -> None:
    assert data_uri(b"\x89PNGxx").startswith("data:image/png;base64,")
    assert data_uri(b"\xff\xd8\xff\xe0").startswith("data:image/jpeg;base64,")
    assert data_uri(b"plain").startswith("data:application/octet-stream;base64,")


def test_the_assistant_form_becomes_a_request_body() -> None:
    body = forms.assistant_body(
        {
            "model": " gpt-4o ",
            "temperature": "0.3",
            "file_search": "on",
            "vector_store_ids": "vs_1, vs_2",
            "functions": '{"name": "f", "parameters": {"type": "object"}}',
            "response_format": "json_schema",
            "json_schema": '{"name": "s", "schema": {"type": "object"}}',
        }
    )
    assert body["model"] == "gpt-4o"
    assert body["temperature"] == 0.3
    assert body["top_p"] is None
    assert body["tools"] == [
        {"type": "file_search"},
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
    ]
    assert body["tool_resources"] == {"file_search": {"vector_store_ids": ["vs_1", "vs_2"]}}
    assert body["response_format"]["json_schema"]["name"] == "s"


def test_the_form_round_trips_an_assistant() -> None:
    fields = forms.assistant_body(
        forms.assistant_fields(
            {
                "model": "m",
                "temperature": 0.5,
                "tools": [{"type": "function", "function": {"name": "g"}}],
                "tool_resources": {},
                "response_format": {"type": "json_object"},
            }
        )
    )
    assert fields["temperature"] == 0.5
    assert fields["tools"] == [{"type": "function", "function": {"name": "g"}}]
    assert fields["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("functions", "[1]", "functions must be JSON objects"),
        ("functions", "{", "functions is not valid JSON"),
        ("temperature", "warm", "temperature must be a number"),
        ("response_format", "yaml", "response_format must be one of"),
    ],
)
def test_a_bad_field_is_named(field: str, value: str, words: str) -> None:
    with pytest.raises(forms.FormError) as caught:
        forms.assistant_body({"model": "m", field: value})
    assert caught.value.field == field
    assert words in caught.value.message
