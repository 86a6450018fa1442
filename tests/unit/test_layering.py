"""The layers of shared/DESIGN.md hold: nothing below the façade imports it, SQL lives in store/, pages stay thin."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "adde_core"
ABOVE_FACADE = {"project.py", "cli.py", "__main__.py"}


def _core_files():
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE)
        yield rel, path.read_text()


def test_nothing_below_the_project_facade_imports_it():
    offenders = [str(rel) for rel, text in _core_files()
                 if rel.parts[0] != "ui" and str(rel) not in ABOVE_FACADE
                 and re.search(r"adde_core\.project|from adde_core import project", text)]
    assert offenders == []


def test_sql_only_in_store():
    sql = re.compile(r"^\s*(from|import) sqlalchemy|(?<![.\w])(?<!def )select\(|\bSession\b", re.M)
    offenders = [str(rel) for rel, text in _core_files() if rel.parts[0] != "store" and sql.search(text)]
    assert offenders == []


def test_pages_import_only_the_project_ui_and_errors():
    allowed = re.compile(r"adde_core\.(ui(\.\w+)*|errors|project)$")
    offenders = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for module in re.findall(r"^\s*(?:from|import) (adde_core[\w.]*)", path.read_text(), re.M):
            if not allowed.match(module):
                offenders.append(f"{path.name}: {module}")
        assert ".store." not in path.read_text(), f"{path.name} reaches into the store; go through Project"
    assert offenders == []
