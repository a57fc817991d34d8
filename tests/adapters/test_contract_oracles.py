"""Stand-ins are independent oracles: a stand-in never imports the adapters it fakes (or their text
rules), or a counting bug in an adapter would agree with itself and no test could fail. Shared HTTP
plumbing is the one exception."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STANDINS = Path(__file__).resolve().parents[2] / "adapters" / "standins"
# What a stand-in may import from ``adapters``: its own package, and the shared HTTP plumbing.
ALLOWED = ("adapters.standins", "adapters.http")


def _parse(source: str) -> ast.Module:
    # CPython 3.11 keeps the AST builder's recursion depth per interpreter, not per thread: a module
    # compiled at the same moment by another thread (a stand-in's handler left from an earlier test
    # importing lazily) can make ast.parse raise "recursion depth mismatch" (seen once in CI). The parse
    # itself is deterministic, so a second try gives the same tree.
    try:
        return ast.parse(source)
    except SystemError:
        return ast.parse(source)


def forbidden_imports(source: str) -> list[str]:
    """The ``adapters.*`` modules ``source`` imports (anywhere, lazily too) that are not allowed."""
    found = []
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
            if node.level == 0 and node.module == "adapters":
                names = [f"adapters.{alias.name}" for alias in node.names]
            # A relative import inside adapters/standins beyond its own package reaches adapters/.
            if node.level > 1:
                names = [f"adapters.{node.module or ''}"]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [n for n in names if (n == "adapters" or n.startswith("adapters."))
                  and not any(n == ok or n.startswith(f"{ok}.") for ok in ALLOWED)]
    return found


@pytest.mark.parametrize("source, expected", [
    ("from adapters.x import x_weighted_length", ["adapters.x"]),
    ("from adapters.text import utf16_units", ["adapters.text"]),
    ("def f():\n    import adapters.mastodon\n", ["adapters.mastodon"]),
    ("from adapters import text", ["adapters.text"]),
    ("from ..text import graphemes", ["adapters.text"]),
    ("from adapters.standins.base import StandIn\nfrom .text import graphemes", []),
    ("from adapters.http import Session", []),
    ("from twitter_text import parse_tweet", []),
])
def test_the_rule_sees_every_form_of_import(source: str, expected: list[str]) -> None:
    assert forbidden_imports(source) == expected


def test_no_standin_imports_an_adapter() -> None:
    modules = sorted(STANDINS.glob("*.py"))
    assert len(modules) >= 10  # every platform's stand-in is looked at
    broken = {m.name: bad for m in modules if (bad := forbidden_imports(m.read_text(encoding="utf-8")))}
    assert broken == {}
