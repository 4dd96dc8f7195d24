"""SMS texts: defaults name the campaign and say how to leave; segments are counted right."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signup.campaigns.models import Campaign
from signup.errors import ValidationError
from signup.messaging import segments, texts
from signup.messaging.models import MessageKind


def campaign(**kw: object) -> Campaign:
    values: dict[str, object] = {
        "slug": "jan",
        "name": "Jan Seva Abhiyan",
        "language": "en",
        "number": "+918047259725",
        "optout_number": "+918047259726",
        "sms_text": None,
    }
    values.update(kw)
    return Campaign(**values)


@pytest.mark.parametrize("language", ["en", "hi"])
@pytest.mark.parametrize("optout", ["+918047259726", None])
def test_default_onboarding_names_campaign_and_says_how_to_leave(
    language: str, optout: str | None
) -> None:
    body = texts.render(MessageKind.ONBOARDING, campaign(language=language, optout_number=optout))
    assert "Jan Seva Abhiyan" in body
    assert (optout in body) if optout else ("STOP" in body)


def test_hindi_onboarding_fits_two_ucs2_segments_even_with_a_long_name() -> None:
    body = texts.render(MessageKind.ONBOARDING, campaign(language="hi", name="X" * 30))
    count = segments.count(body)
    assert count.encoding == "UCS-2"
    assert count.units <= 134
    assert count.segments <= 2


def test_custom_text_placeholders_are_filled() -> None:
    body = texts.render(
        MessageKind.ONBOARDING,
        campaign(sms_text="Welcome to {campaign}! Leave any time: missed call {optout_number}."),
    )
    assert body == "Welcome to Jan Seva Abhiyan! Leave any time: missed call +918047259726."


def test_optout_confirmation_says_how_to_come_back() -> None:
    body = texts.render(MessageKind.OPTOUT_CONFIRMATION, campaign())
    assert "+918047259725" in body and "Jan Seva Abhiyan" in body


@pytest.mark.parametrize(
    ("text", "has_optout", "error"),
    [
        ("Hi {campaign} {unknown}", True, "unknown placeholder"),
        ("Hi {campaign", True, "unbalanced braces"),
        ("Thanks for joining. Reply STOP to leave.", True, "must name the campaign"),
        ("{campaign}: welcome!", True, "how to leave"),
        ("{campaign}: leave via {optout_number}", False, "no opt-out number"),
        ("   ", True, "empty"),
    ],
)
def test_bad_custom_texts_are_refused(text: str, has_optout: bool, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        texts.validate_sms_text(text, name="Jan Seva", has_optout_number=has_optout)


@pytest.mark.parametrize("name", sorted(texts.PLACEHOLDERS))
@pytest.mark.parametrize(
    "suffix", [":>20000", ":>999999999", ":s", ":,", "!r", "!s", "!a", "!r:>9", ".upper", "[0]"]
)
def test_placeholders_with_a_format_conversion_or_lookup_are_refused(
    name: str, suffix: str
) -> None:
    with pytest.raises(ValidationError):
        texts.validate_sms_text(
            "{" + name + suffix + "} {campaign} reply STOP", name="Jan", has_optout_number=True
        )


FIELDS = st.builds(
    "{{{}{}{}}}".format,
    st.sampled_from([*sorted(texts.PLACEHOLDERS), "campaign.upper", "number[0]", "0", ""]),
    st.sampled_from(["", "!r", "!s", "!a"]),
    st.one_of(st.just(""), st.text(alphabet="<>^=+0123456789,._s", max_size=6).map(":".__add__)),
)
PIECES = st.one_of(FIELDS, st.sampled_from(["{{", "}}", "{", "}", " STOP ", "x", ":", "!"]))


@settings(max_examples=500)
@given(template=st.lists(PIECES, max_size=30).map("".join))
def test_an_accepted_text_renders_no_longer_than_its_placeholders_allow(template: str) -> None:
    """Whatever braces a text holds, once accepted it renders within its values' lengths."""
    try:
        texts.validate_text(
            template, name="Jan", has_optout_number=True, must_say_how_to_leave=False
        )
    except ValidationError:
        return
    body = texts.render(MessageKind.ONBOARDING, campaign(sms_text=template))
    growth = len("Jan Seva Abhiyan") - len("{campaign}")  # the most a placeholder adds
    assert len(body) <= len(template) + growth * template.count("{")


def test_custom_text_may_name_the_campaign_literally() -> None:
    texts.validate_sms_text(
        "Jan Seva welcomes you. Reply STOP to leave.", name="Jan Seva", has_optout_number=False
    )


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("{" * 80, "GSM-7", 160, 1),  # extension characters count double
        ("{" * 81, "GSM-7", 162, 2),
        ("€" + "a" * 159, "GSM-7", 161, 2),
        ("न" * 70, "UCS-2", 70, 1),
        ("न" * 71, "UCS-2", 71, 2),
        ("न" * 134, "UCS-2", 134, 2),
        ("न" * 135, "UCS-2", 135, 3),
        ("👍" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units each
    ],
)
def test_segment_count(text: str, encoding: str, units: int, parts: int) -> None:
    assert segments.count(text) == segments.SegmentCount(encoding, units, parts)
