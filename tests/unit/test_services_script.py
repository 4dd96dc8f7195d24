"""`make test` must not weaken the machine: no script edits PostgreSQL's authentication."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    [*(ROOT / "scripts").glob("*.sh"), ROOT / "Makefile", ROOT / ".ci" / "run"],
    key=lambda p: p.name,
)
# A write to a server's configuration: sed -i, a redirection or tee onto it, or ALTER SYSTEM.
EDITS = re.compile(
    r"(sed\s[^\n]*-i[^\n]*|>>?\s*\S*|tee\s[^\n]*)(pg_hba|pg_ident|postgresql(\.auto)?\.conf)"
    r"|ALTER\s+SYSTEM",
    re.IGNORECASE,
)
HBA_VARIABLE = re.compile(r"^\s*(local\s+)?\w+=.*pg_hba", re.MULTILINE)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_script_edits_postgresqls_authentication(script: Path) -> None:
    text = script.read_text()
    assert not EDITS.search(text), f"{script.name} edits PostgreSQL's configuration"
    assert not HBA_VARIABLE.search(text), f"{script.name} names pg_hba.conf to edit it later"
    assert not re.search(r"\btrust\b\s*(#|$)", text, re.MULTILINE), f"{script.name}: trust auth"
