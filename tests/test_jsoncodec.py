"""JSON by orjson gives what the standard library gave: the till's answers, what is stored, and
what is refused. Where orjson refuses (huge integers, NaN, lone surrogates), the standard library
answers, so nothing that worked before breaks."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pos_loyalty import jsoncodec

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_what_is_written_reads_back_the_same_and_as_the_standard_library_reads_it(value):
    text = jsoncodec.dumps(value)
    assert jsoncodec.loads(text) == value
    assert json.loads(text) == value
    assert jsoncodec.loads(json.dumps(value)) == value  # rows the standard library wrote read the same


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_text_is_written_as_the_standard_library_writes_it_without_ascii_escapes(text):
    """The privacy erasure finds a customer's name in stored JSON by these forms (persistence/privacy.py)."""
    assert jsoncodec.dumps(text) == json.dumps(text, ensure_ascii=False)


def test_what_orjson_refuses_the_standard_library_still_handles():
    assert jsoncodec.dumps({"big": 10**30}) == '{"big":1000000000000000000000000000000}'
    assert jsoncodec.loads('{"big": 1000000000000000000000000000000}') == {"big": 10**30}
    assert jsoncodec.loads('{"n": NaN}')["n"] != jsoncodec.loads('{"n": NaN}')["n"]  # NaN, as before
    assert jsoncodec.loads('"\\ud800"') == "\ud800"
    with pytest.raises(json.JSONDecodeError):
        jsoncodec.loads("{not json")
    with pytest.raises(TypeError):
        jsoncodec.dumps({"x": object()})


def test_the_api_writes_dates_decimals_uuids_and_dataclasses_as_flask_did(app):
    @dataclasses.dataclass
    class Point:
        x: int
        when: dt.date

    value = {
        "at": dt.datetime(2026, 11, 26, 13, 5, 9, tzinfo=dt.timezone.utc),
        "day": dt.date(2026, 11, 26),
        "amount": decimal.Decimal("12.30"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "point": Point(1, dt.date(2026, 1, 2)),
        "name": "Zoë",
        7: "a number as a key",
    }
    from flask.json.provider import DefaultJSONProvider

    flask_default = DefaultJSONProvider(app)
    flask_default.sort_keys = False
    with app.app_context():
        ours = app.json.response(value)
        theirs = flask_default.response(value)
    assert ours.mimetype == theirs.mimetype == "application/json"
    assert json.loads(ours.get_data()) == json.loads(theirs.get_data())
    assert json.loads(ours.get_data())["at"] == "Thu, 26 Nov 2026 13:05:09 GMT"
    assert app.json.loads(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
