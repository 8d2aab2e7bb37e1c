"""Pure parts of the response_format probes: JSON prefixes and the schema check."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.observation import NotApplicable, ProbeError
from conformance.probes.response_format import (
    NOT_JSON,
    is_object_prefix,
    json_mode,
    parse_json,
    schema_errors,
    structured_output,
)
from tests.probes._fake import CATALOG, completion, context, refusal

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=5), json_values, max_size=4)


@given(objects, st.data(), st.sampled_from([None, 2]), st.booleans())
def test_every_prefix_of_an_object_is_an_object_prefix(
    value: dict[str, Any], data: st.DataObject, indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    cut = data.draw(st.integers(min_value=1, max_value=len(text)))
    assert is_object_prefix(text[:cut])
    assert is_object_prefix("\n " + text)


@given(json_values)
def test_other_values_are_not_object_prefixes(value: Any) -> None:
    text = json.dumps(value)
    assert is_object_prefix(text) is isinstance(value, dict)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " alpha bravo",
        "{} and more",
        '{"a" 1',
        '{"a": 01',
        '{"a": 1.e',
        '{"a": tru e',
        '{"a": "\\x"}',
        '{"a": "\\u12g4"}',
        '{"a": "line\nbreak"}',
        '{"a": [1,]}',
        '{"a": 1,}',
        '{"a": 1]',
        "{,",
    ],
)
def test_broken_json_is_no_object_prefix(text: str) -> None:
    assert not is_object_prefix(text)


@pytest.mark.parametrize(
    "text", ['{"', '{" alpha bravo charlie', '{"a": tr', '{"a": -', '{"a": 1e+', '{"a": "\\u1']
)
def test_cut_off_objects_are_object_prefixes(text: str) -> None:
    assert is_object_prefix(text)


def test_parse_json_tells_null_from_not_json() -> None:
    assert parse_json(" null ") is None
    assert parse_json("{") is NOT_JSON
    assert parse_json('{"a": 1}') == {"a": 1}


COLOUR = {
    "type": "object",
    "properties": {"color": {"type": "string", "enum": ["octarine", "smaragdine"]}},
    "required": ["color"],
    "additionalProperties": False,
}


def test_schema_check_of_the_colour_schema() -> None:
    assert schema_errors({"color": "octarine"}, COLOUR) == []
    assert schema_errors({"color": "blue"}, COLOUR) == [
        "$.color: \"blue\" is not one of ['octarine', 'smaragdine']"
    ]
    assert schema_errors({}, COLOUR) == ["$: the required property 'color' is missing"]
    assert schema_errors({"color": "octarine", "x": 1}, COLOUR) == [
        "$: the property 'x' is not allowed"
    ]
    assert schema_errors(["octarine"], COLOUR) == ['$: ["octarine"] is not of type object']


@pytest.mark.parametrize(
    ("value", "kind", "valid"),
    [
        (True, "boolean", True),
        (True, "integer", False),
        (1, "number", True),
        (1.5, "integer", False),
        (None, "null", True),
        ("1", "number", False),
    ],
)
def test_schema_types(value: Any, kind: str, valid: bool) -> None:
    assert (schema_errors(value, {"type": kind}) == []) is valid


def test_schema_enum_tells_true_from_one() -> None:
    assert schema_errors(1, {"enum": [True]})
    assert not schema_errors(1.0, {"enum": [1]})
    assert not schema_errors([1, 2], {"type": "array", "items": {"type": "integer"}})
    assert schema_errors([1, "2"], {"type": "array", "items": {"type": "integer"}})
    assert schema_errors({"a": "x"}, {"additionalProperties": {"type": "integer"}})


def test_schema_keywords_the_check_cannot_make_are_an_error() -> None:
    with pytest.raises(ValueError, match="pattern"):
        schema_errors("x", {"type": "string", "pattern": "^x$"})
    with pytest.raises(ValueError, match="unknown JSON type"):
        schema_errors("x", {"type": "text"})


# --------------------------------------------------------------------------- the probes


def _formatted(control: str, formatted: tuple[int, dict[str, Any]]) -> Any:
    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return formatted if "response_format" in body else completion(control)

    return answer


def test_json_mode_counts_an_object_cut_off_at_max_tokens() -> None:
    ctx, _ = context("response_format.json_object", _formatted(" alpha", completion('{"a": "b')))
    assert json_mode(ctx).outcome == "honoured"
    stopped = completion('{"a": "b', finish_reason="stop")
    ctx, _ = context("response_format.json_object", _formatted(" alpha", stopped))
    assert json_mode(ctx).outcome == "ignored"


def test_json_mode_cannot_show_where_the_control_is_json() -> None:
    ctx, sent = context("response_format.json_object", _formatted('{"a"', completion("{}")))
    with pytest.raises(NotApplicable, match="control"):
        json_mode(ctx)
    assert len(sent) == 1


def test_structured_output_outcomes_beyond_the_reference_server() -> None:
    behavior = "response_format.json_schema"
    ctx, _ = context(behavior, _formatted(" alpha", completion('{"color"\n\n\n')))
    assert structured_output(ctx).outcome == "cut_off"
    ctx, _ = context(behavior, _formatted(" alpha", refusal(status=500)))
    assert structured_output(ctx).outcome == "server_error"
    ctx, _ = context(behavior, _formatted("[1]", completion('{"color": "blue"}')))
    with pytest.raises(NotApplicable, match="JSON without response_format"):
        structured_output(ctx)
    ctx, _ = context(behavior, _formatted('{"color": "octarine"}', completion("{}")))
    with pytest.raises(NotApplicable, match="follows the schema"):
        structured_output(ctx)


def test_structured_output_with_a_schema_it_cannot_check_is_an_error() -> None:
    params = dict(CATALOG.behaviors["response_format.json_schema"].params)
    params["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "^a"}},
    }
    answer = _formatted(" alpha", completion('"a"', finish_reason="stop"))
    ctx, _ = context("response_format.json_schema", answer, params=params)
    with pytest.raises(ProbeError, match="cannot be checked"):
        structured_output(ctx)
