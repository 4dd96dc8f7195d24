"""The signature check's shortcuts give what twilio and werkzeug would: form lists, the URL."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from signup.calls.fastpath import form_dict
from signup.calls.providers.twilio import signature_matches, signed_url

# Repeated names (with repeated values) and the characters that sort oddly.
fields = st.lists(
    st.tuples(
        st.sampled_from(["", "A", "a", "From", "é", "Z"]) | st.text(max_size=8),
        st.sampled_from(["", "1", "+91", "é"]) | st.text(max_size=12),
    ),
    max_size=12,
)
URLS = (
    "https://signup.example.org/webhooks/twilio/voice",
    "https://signup.example.org:443/webhooks/twilio/voice?campaign=1&b=%2B",
    "http://127.0.0.1:8000/webhooks/twilio/voice",
)


@given(fields, st.sampled_from(URLS))
def test_signature_matches_what_twilio_computes(pairs: list[tuple[str, str]], url: str) -> None:
    validator = RequestValidator("token")
    for form in (MultiDict(pairs), ImmutableMultiDict(pairs), form_dict(MultiDict(pairs).lists())):
        expected = validator.compute_signature(url, form)  # its getall/getlist path
        assert validator.validate(url, form, expected)
        assert signature_matches("token", url, form, expected)
        assert not signature_matches("other", url, form, expected)
        assert not signature_matches("token", url + "x", form, expected)


@given(fields, st.sampled_from(URLS), st.text(max_size=30))
def test_signature_accepts_only_what_twilio_accepts(
    pairs: list[tuple[str, str]], url: str, signature: str
) -> None:
    form = MultiDict(pairs)
    validator = RequestValidator("token")
    for header in (signature, validator.compute_signature(url, form)[:-1] + signature[:1]):
        assert signature_matches("token", url, form, header) == validator.validate(
            url, form, header
        )


def test_twilios_own_vectors() -> None:
    """twilio-python's test vectors (../shared/reference/telephony.md, section 2)."""
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    form = MultiDict(params)
    vectors = [
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ]
    validator = RequestValidator("12345")
    for url, signature in vectors:
        assert validator.validate(url, form, signature)
        assert signature_matches("12345", url, form, signature)
        assert not signature_matches("12345", url.replace("http", "ftp", 1), form, signature)
    repeated = MultiDict(
        [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]
    )
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert signature_matches("12345", url, repeated, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")


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
