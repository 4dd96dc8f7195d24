"""The signature check's shortcuts give what twilio and werkzeug would: form lists, the URL."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from signup.calls.providers.twilio import _FormValues, signature_matches, signed_url

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


@given(
    st.sampled_from(["http", "https"]),
    st.sampled_from(["127.0.0.1:8000", "signup.example.org", "[::1]:8443", "xn--h2brj9c.in"]),
    st.sampled_from(["", "/campaign"]),
    st.text(alphabet="abz/%20é+.-", max_size=24),
    st.text(alphabet="a=&%2B+ ", max_size=16),
)
def test_the_remembered_url_is_werkzeugs(
    scheme: str, host: str, root: str, path: str, query: str
) -> None:
    environ = EnvironBuilder(
        path="/webhooks/" + path, base_url=f"{scheme}://{host}{root}", query_string=query
    ).get_environ()
    for _ in range(2):  # computed, then from the cache
        request = Request(environ)
        assert signed_url(request, None) == request.url
