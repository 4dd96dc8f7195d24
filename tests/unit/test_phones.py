"""Caller strings in every format Indian callers arrive in, normalised to E.164 and a kind."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signup import phones
from signup.phones import PhoneKind, mask, normalise

MOBILE = "+919911278181"


@pytest.mark.parametrize(
    "raw",
    [
        "+91 99112 78181",
        "099112 78181",
        "919911278181",
        "0091 99112 78181",
        "(+91) 99112-78181",
        "9911278181",
        "+919911278181",
        "09911278181",  # Exotel's format
        "९९११२७८१८१",  # Devanagari digits
        "+९१ ९९११२ ७८१८१",
        " +91-99112-78181 ",
    ],
)
def test_indian_mobile_formats_normalise_to_one_e164(raw: str) -> None:
    phone = normalise(raw)
    assert phone.e164 == MOBILE
    assert phone.kind is PhoneKind.MOBILE
    assert phone.is_indian_mobile


@pytest.mark.parametrize(
    "raw",
    [
        "anonymous",
        "ANONYMOUS",
        "RESTRICTED",
        "Unknown",
        "",
        "   ",
        None,
        "client:Anonymous",
        "Private",
    ],
)
def test_withheld_callers(raw: str | None) -> None:
    phone = normalise(raw)
    assert phone.kind is PhoneKind.WITHHELD
    assert phone.e164 is None
    assert not phone.is_person


@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("02261550789", "+912261550789", PhoneKind.FIXED_LINE),
        ("1800 266 2020", "+9118002662020", PhoneKind.TOLL_FREE),
        ("+14155552671", "+14155552671", PhoneKind.FOREIGN),
        ("+447911123456", "+447911123456", PhoneKind.FOREIGN),
        ("+91987654321", None, PhoneKind.INVALID),  # nine digits
        ("+9198765432100", None, PhoneKind.INVALID),
        ("12", None, PhoneKind.INVALID),
        ("9" * 10_000, None, PhoneKind.INVALID),  # a 10 kB value
        ("+91 99112 78181" + "x" * 100, None, PhoneKind.INVALID),
    ],
)
def test_other_kinds(raw: str, e164: str | None, kind: PhoneKind) -> None:
    phone = normalise(raw)
    assert (phone.e164, phone.kind) == (e164, kind)


def test_only_indian_mobiles_get_sms() -> None:
    assert not normalise("02261550789").is_indian_mobile
    assert not normalise("+14155552671").is_indian_mobile
    assert normalise("+14155552671").is_person


@given(st.text(max_size=80))
def test_any_text_normalises_without_raising(raw: str) -> None:
    phone = normalise(raw)
    assert (phone.e164 is None) == (phone.kind in (PhoneKind.INVALID, PhoneKind.WITHHELD))


indian_mobiles = st.builds(
    lambda first, rest: f"{first}{rest:09d}",
    st.sampled_from("6789"),
    st.integers(min_value=0, max_value=999_999_999),
)
prefixes = st.sampled_from(["", "0", "91", "+91", "0091", "+91 ", "(+91) "])


@given(prefixes, indian_mobiles)
def test_normalising_e164_returns_it(prefix: str, digits: str) -> None:
    phone = normalise(prefix + digits)
    if phone.e164 is None:
        return  # a range phonenumbers does not allocate
    again = normalise(phone.e164)
    assert again == phone
    assert phone.e164 == "+91" + digits


@given(st.text(alphabet="0123456789 +-()", min_size=1, max_size=20))
def test_idempotent_on_any_digit_string(raw: str) -> None:
    phone = normalise(raw)
    if phone.e164 is not None:
        assert normalise(phone.e164) == phone


def test_mask_hides_the_middle() -> None:
    assert mask(MOBILE) == "+91 99XXX XX181"
    assert "7818" not in mask(MOBILE)
    assert mask("+14155552671") == "+14XXXXXX671"
    assert mask(None) == "-"


def test_geocoder_and_carrier_stay_out_of_web_and_worker_processes() -> None:
    code = (
        "import sys\n"
        "from signup import create_app\n"
        "import workers\n"
        "from signup.phones import normalise\n"
        "normalise('+919911278181')\n"
        "bad = [m for m in sys.modules if m.startswith(('phonenumbers.geocoder',"
        " 'phonenumbers.carrier', 'phonenumbers.timezone', 'phonenumbers.geodata',"
        " 'phonenumbers.carrierdata'))]\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "SIGNUP_ENV": "development",
            "SIGNUP_INSTANCE_PATH": "/tmp/signup-test-instance",
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_indian_e164_shortcut_agrees_with_parsing_for_every_prefix() -> None:
    """The "+91 and ten digits" shortcut gives what phonenumbers' parser gives, prefix by prefix.

    Indian number types are decided by leading digits, so every four-digit prefix with
    suffixes spread over the rest covers the ranges the metadata distinguishes.
    """
    suffixes = ("000000", "123456", "500000", "987654", "999999")
    for prefix in range(1000, 10000):
        for suffix in suffixes:
            national = f"{prefix}{suffix}"
            assert phones._indian_e164(national) == phones._by_parsing("+91" + national), national


@given(st.from_regex(r"\A\+91[1-9][0-9]{9}\Z"))
def test_indian_e164_takes_the_shortcut_and_agrees(raw: str) -> None:
    """normalise() of any "+91 and ten digits" string equals the parser's answer."""
    assert normalise(raw) == phones._by_parsing(raw)


def test_devanagari_digits_after_plus_91_still_become_ascii() -> None:
    """The shortcut is for ASCII digits only; other digits go through the parser."""
    assert normalise("+९१९८१२३४५६७८").e164 == "+919812345678"
    assert normalise("+91९८१२३४५६७८").e164 == "+919812345678"
