"""Server outputs and client inputs: any JSON parses to a model, RawOutput or a ValueError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydrafed.hydra import messages
from tests.unit.fuzz.strategies import PROFILE, json_values

pytestmark = pytest.mark.unit

OUTPUT_TAGS = st.sampled_from(sorted(messages.SERVER_OUTPUTS))
INPUT_TAGS = st.sampled_from(sorted(messages.CLIENT_INPUTS))


@PROFILE
@given(json_values())
def test_any_json_is_a_server_output(data: Any) -> None:
    out = messages.parse_output(data)
    assert isinstance(out, messages.ServerOutput)
    assert out.seq is None or isinstance(out.seq, int)


@PROFILE
@given(OUTPUT_TAGS, st.dictionaries(st.text(max_size=24), json_values(10), max_size=8), json_values(4))
def test_known_tags_with_fields_of_any_type_never_raise(tag: str, fields: dict[str, Any], seq: Any) -> None:
    out = messages.parse_output({**fields, "tag": tag, "seq": seq})
    assert isinstance(out, messages.ServerOutput)
    out.to_json()


@PROFILE
@given(
    st.one_of(
        json_values(),
        st.builds(
            lambda t, d: {**d, "tag": t}, INPUT_TAGS, st.dictionaries(st.text(max_size=24), json_values(10))
        ),
    )
)
def test_any_json_is_a_client_input_or_a_value_error(data: Any) -> None:
    try:
        parsed = messages.parse_input(data)
    except ValueError:  # pydantic's ValidationError is one
        return
    assert parsed.tag == data["tag"]
