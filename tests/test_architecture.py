"""The map in docs/architecture.md matches the tree, and the import rule holds (import-linter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "architecture.md"


def test_the_import_rule_holds() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # Each contract was checked, not skipped for want of a configuration.
    assert "Contracts: " in result.stdout and " broken" in result.stdout


def _map_rows() -> dict[str, str]:
    rows = {}
    for line in MAP.read_text().splitlines():
        folder = r"scheduler/\w+/|adapters/(?:standins/)?|config/|migrations/"
        match = re.match(rf"^\| `({folder})` \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_scheduler_package_is_on_the_map_and_every_module_the_map_names_exists() -> None:
    rows = _map_rows()
    packages = {f"scheduler/{p.parent.name}/" for p in (ROOT / "scheduler").glob("*/__init__.py")}
    assert packages, "no scheduler packages found"
    assert packages <= set(rows), f"packages missing from {MAP.name}: {sorted(packages - set(rows))}"
    for folder, text in rows.items():
        assert (ROOT / folder).is_dir(), f"{MAP.name} names {folder}, which does not exist"
        for module in re.findall(r"`(\w+\.py)`", text):
            assert (ROOT / folder / module).is_file(), f"{MAP.name} names {folder}{module}: no such file"
    for package in packages:
        modules = {p.name for p in (ROOT / package).glob("*.py")} - {"__init__.py", "__main__.py"}
        named = set(re.findall(r"`(\w+\.py)`", rows[package]))
        assert modules <= named, f"{package}: modules missing from {MAP.name}: {sorted(modules - named)}"
