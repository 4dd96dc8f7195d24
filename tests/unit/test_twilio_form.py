"""The signature check reads a form's lists through dict look-ups: still what getlist gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from signup.calls.providers.twilio import _FormValues, signature_matches

fields = st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=12)


@given(fields)
def test_form_values_equal_getlist(pairs: list[tuple[str, str]]) -> None:
    for form in (MultiDict(pairs), ImmutableMultiDict(pairs)):
        values = _FormValues(form)
        assert sorted(values) == sorted(form.keys())
        for name in form:
            assert values.getall(name) == form.getlist(name)


@given(fields)
def test_signature_matches_what_twilio_computes(pairs: list[tuple[str, str]]) -> None:
    url = "https://signup.example.org/webhooks/twilio/voice"
    form = ImmutableMultiDict(pairs)
    expected = RequestValidator("token").compute_signature(url, form)  # its getlist path
    assert signature_matches("token", url, form, expected)
    assert not signature_matches("other", url, form, expected)
