"""The Data page's "Open or create another project" sets the database URL (AppTest, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.backends import make_synthetic_project

ROOT = Path(__file__).resolve().parents[3]


def _data_page(tmp_path, monkeypatch) -> AppTest:
    make_synthetic_project(tmp_path / "current", n_per=6, n_seed=2, n_val=2).close()
    monkeypatch.setenv("ADDE_PROJECT", str(tmp_path / "current"))
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()


def _create(app: AppTest, folder: Path, url: str) -> AppTest:
    next(t for t in app.text_input if t.label == "Project folder").input(str(folder)).run()
    app.text_input(key="create_database_url").input(url).run()
    return next(b for b in app.button if b.label == "Create project").click().run()


def test_create_a_project_on_a_database_from_the_data_page(tmp_path, monkeypatch, database_url):
    app = _data_page(tmp_path, monkeypatch)
    assert not app.exception
    app = _create(app, tmp_path / "mine", database_url or "")
    assert not app.exception and not app.error, [e.value for e in app.error]
    config = json.loads((tmp_path / "mine" / "adde_project.json").read_text())
    assert config["database_url"] == database_url
    # captions carry data-derived text Markdown-escaped (adde_core.ui.text.md): compare without the escapes
    assert any(str(tmp_path / "mine") in c.value.replace("\\", "") for c in app.caption), \
        "the session switched to the new project"


def test_an_unreachable_database_is_a_message_and_no_folder(tmp_path, monkeypatch):
    app = _data_page(tmp_path, monkeypatch)
    app = _create(app, tmp_path / "new", "postgresql+psycopg://ann:secret@127.0.0.1:1/adde")
    assert not app.exception
    assert any("cannot use the database" in e.value and "secret" not in e.value for e in app.error)
    assert not (tmp_path / "new").exists()
