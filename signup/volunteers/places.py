"""PIN code to state and district, from India Post's directory bundled offline.

The data comes with the `indian-pincode` package (India Post / data.gov.in under the
Government Open Data License - India); no network call is ever made.
"""

from __future__ import annotations

from dataclasses import dataclass

SMALL_WORDS = {"and", "of"}


@dataclass(frozen=True, slots=True)
class Place:
    """Where a PIN code is: its state and, when the code lies in one district only, that."""

    state: str
    district: str | None


def _title(name: str) -> str:
    words = name.replace("&", " and ").split()
    return " ".join(
        w.lower() if w.lower() in SMALL_WORDS and i else w.capitalize() for i, w in enumerate(words)
    )


def lookup(pincode: str) -> Place | None:
    """The place of a PIN code, or None when India Post does not know it."""
    import indian_pincode  # about 10 MB of data: loaded by the first lookup, not at start

    if not indian_pincode.validate(pincode):
        return None
    state = indian_pincode.get_state(pincode)
    if not state:
        return None
    districts = indian_pincode.get_districts(pincode)
    district = _title(districts[0]) if len(districts) == 1 else None
    return Place(_title(state), district)


def data_version() -> str:
    """The India Post snapshot the bundled table was built from."""
    import indian_pincode

    return str(indian_pincode.DATA_VERSION)
