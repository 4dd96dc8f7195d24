"""`.env.example`, the README and the code agree: one table of settings (signup.config.SETTINGS)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from signup.config import BY_NAME, COMPOSE_ONLY, SETTINGS, ConfigError

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
MENTION = re.compile(r"^#\s+-\s+([A-Z][A-Z0-9_]*)[=:]")
DEFAULT = re.compile(r"Default:\s*(.+?)(?=\.(?:\s|$)|$)")


def _blocks() -> list[tuple[list[str], list[tuple[str, str]]]]:
    """(comment lines, assignments) of each paragraph of .env.example."""
    blocks: list[tuple[list[str], list[tuple[str, str]]]] = [([], [])]
    for line in (ROOT / ".env.example").read_text().splitlines():
        if not line.strip():
            blocks.append(([], []))
        elif line.startswith("#"):
            blocks[-1][0].append(line)
        elif match := ASSIGNMENT.match(line):
            blocks[-1][1].append((match[1], match[2]))
        else:
            pytest.fail(f".env.example: neither comment nor NAME=value: {line!r}")
    return [block for block in blocks if block[1] or block[0]]


def _assigned() -> dict[str, str]:
    return {name: value for _, pairs in _blocks() for name, value in pairs}


def _mentioned() -> set[str]:
    """Names listed in comments as read but not set there (`# - NAME: …`)."""
    return {m[1] for comments, _ in _blocks() for line in comments if (m := MENTION.match(line))}


def test_every_setting_the_code_reads_is_in_env_example() -> None:
    missing = [s.name for s in SETTINGS if s.name not in _assigned() | dict.fromkeys(_mentioned())]
    assert not missing, f"add to .env.example: {missing}"


def test_env_example_names_nothing_the_code_does_not_read() -> None:
    unknown = sorted((set(_assigned()) | _mentioned()) - set(BY_NAME) - COMPOSE_ONLY)
    assert not unknown, f"not read by the app nor by docker-compose.yml: {unknown}"


def test_every_value_in_env_example_is_accepted() -> None:
    for name, value in _assigned().items():
        if name in BY_NAME and value:
            BY_NAME[name].parse(name, value)  # raises ConfigError on a value the app refuses


def test_every_default_env_example_states_is_the_codes() -> None:
    checked = 0
    for comments, pairs in _blocks():
        prose = " ".join(line.lstrip("#").strip() for line in comments)
        stated = [m.strip() for m in DEFAULT.findall(prose)]
        settings = [BY_NAME[name] for name, _ in pairs if name in BY_NAME]
        if not stated or not settings:
            continue
        assert len(stated) == 1 and len(settings) == 1, f"one default per paragraph: {comments}"
        assert stated[0].startswith(settings[0].shown), (
            f"{settings[0].name}: .env.example says 'Default: {stated[0]}', "
            f"the code's default is {settings[0].shown}"
        )
        checked += 1
    assert checked >= 10  # the pattern still finds the defaults


def _readme_rows() -> list[tuple[list[str], list[str]]]:
    """(variables, backticked defaults) of each row of the README's Environment table."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Environment") :]
    section = section[: section.index("\n## ", 5)]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows.append(
                (re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]), re.findall(r"`([^`]+)`", cells[-1]))
            )
    return rows


def test_the_readme_documents_every_setting_with_the_codes_default() -> None:
    documented: set[str] = set()
    for names, defaults in _readme_rows():
        documented |= set(names)
        assert set(names) <= set(BY_NAME), f"README documents unknown settings: {names}"
        if len(names) != len(defaults):
            continue  # a default in words (development, derived): not a value to compare
        for name, default in zip(names, defaults, strict=True):
            setting = BY_NAME[name]
            if setting.described is None and setting.default is not None:
                assert default == setting.shown, f"README: {name} defaults to {setting.shown}"
    assert not [s.name for s in SETTINGS if s.name not in documented]


def test_every_variable_read_in_the_code_is_in_the_table() -> None:
    """os.environ / getenv reads anywhere in signup/ or workers/ name a setting of the table."""
    read: set[str] = set()
    for path in [*(ROOT / "signup").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            read |= _environ_names(node)
    unknown = sorted(read - set(BY_NAME))
    assert read and not unknown, f"read from the environment but not in SETTINGS: {unknown}"


def _environ_names(node: ast.AST) -> set[str]:
    """String literals read as environment variable names (os.environ, os.getenv) here."""
    key: ast.expr | None = None
    if isinstance(node, ast.Call) and node.args:
        if ast.unparse(node.func) in {"os.environ.get", "os.getenv", "os.environ.setdefault"}:
            key = node.args[0]
    elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
        key = node.slice
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return {key.value}
    return set()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_with_a_parser_refuses_nonsense(setting: object) -> None:
    """Numbers, booleans and enumerations refuse a typo with one line naming the variable."""
    from signup.config import Setting, text

    assert isinstance(setting, Setting)
    if setting.parse is text:
        return
    with pytest.raises(ConfigError) as refused:
        setting.parse(setting.name, "ture-jsn-abc")
    message = str(refused.value)
    assert setting.name in message and "\n" not in message and "'ture-jsn-abc'" in message
