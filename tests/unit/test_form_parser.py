"""The fast path's form parser gives what werkzeug's (parse_qsl) gives, value for value."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" error handler
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import ImmutableMultiDict

from signup.calls.fastpath import form_dict, parse_form

# Raw bodies built from the characters that matter: separators, escapes, plus, odd bytes.
raw = st.text(
    alphabet=st.one_of(st.sampled_from(list("ab=&+%2B0Fz;é ")), st.characters()), max_size=60
)


def werkzeug_form(text: str) -> ImmutableMultiDict[str, str]:
    return ImmutableMultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))


@given(raw)
def test_any_body_parses_like_werkzeug(text: str) -> None:
    for _ in range(2):  # decoded, then from the cache
        ours = form_dict(parse_form(text).items())
        theirs = werkzeug_form(text)
        assert list(ours.items(multi=True)) == list(theirs.items(multi=True))
        assert ours == theirs
        assert {name: ours.getlist(name) for name in ours} == dict(theirs.lists())


@given(st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=10))
def test_encoded_forms_round_trip(pairs: list[tuple[str, str]]) -> None:
    text = urlencode(pairs)
    ours = ImmutableMultiDict(parse_form(text))
    assert list(ours.items(multi=True)) == list(werkzeug_form(text).items(multi=True))


def test_invalid_percent_escapes_are_kept_as_werkzeug_keeps_them() -> None:
    text = "a=%ZZ&b=%e9&c=%C3%A9&=x&d&&e=1+2"
    assert parse_form(text) == {k: v for k, v in werkzeug_form(text).lists()}


def test_numbers_in_e164_decode_as_werkzeug_decodes_them() -> None:
    text = "From=%2B919812345678&b=%2B91%2B1&c=%2b12&d=%2B&e=%2B%D9%A3&f=%2B12+3&g=%2B١٢"
    assert parse_form(text) == {k: v for k, v in werkzeug_form(text).lists()}
    assert parse_form(text) == parse_form(text)  # again, from the cache
