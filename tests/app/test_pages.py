"""Streamlit AppTest: every page opens without an exception, and the Data page shows the demo correctly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["pages/data.py", "pages/explore.py", "pages/diversity.py", "pages/review.py", "pages/trends.py"]
COMING_NEXT = ["pages/review.py", "pages/trends.py"]


def _app_on_copy(source, tmp_path, monkeypatch) -> tuple[AppTest, object]:
    """Run app.py on a private copy of a prebuilt project (tests may write to it)."""
    project = tmp_path / "project"
    shutil.copytree(source, project)
    monkeypatch.setenv("ADDE_PROJECT", str(project))
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run(), project


@pytest.fixture()
def app(small_demo_dir, tmp_path, monkeypatch):
    return _app_on_copy(small_demo_dir, tmp_path, monkeypatch)[0]


def test_every_page_opens_without_exception(app):
    assert not app.exception
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, page
        assert app.title, page


def test_coming_next_pages_show_no_numbers(app):
    for page in COMING_NEXT:
        app.switch_page(page).run()
        assert not app.metric, page
        assert any("Coming next" in i.value for i in app.info), page


def test_data_page_shows_counts_and_images(app, small_demo_spec):
    sidebar = app.sidebar.table[0].value
    n_val = small_demo_spec.val_per_class * 10
    assert sidebar.loc["val", "total"] == n_val
    assert sidebar.loc["seed", "real"] == 8 * small_demo_spec.seed_per_class + 2 + 3
    assert app.sidebar.metric[0].value == "0"  # iteration
    assert len(app.get("image")) == 60  # one page of the grid


def test_bad_ingest_input_is_an_error_message_not_a_traceback(app, tmp_path):
    app.text_input(key="ingest_folder").input(str(tmp_path / "does-not-exist")).run()
    next(b for b in app.button if b.label == "Ingest folder").click().run()
    assert not app.exception
    assert any("does-not-exist: not a folder" in e.value for e in app.error)


def test_explore_without_embeddings_says_what_to_do(app):
    app.switch_page("pages/explore.py").run()
    assert not app.exception
    assert any("embed the data on the **Data** page" in i.value for i in app.info)


@pytest.fixture()
def embedded_app(small_demo_embedded_dir, tmp_path, monkeypatch):
    at, project = _app_on_copy(small_demo_embedded_dir, tmp_path, monkeypatch)
    at.switch_page("pages/explore.py").run()
    return at, project


def test_explore_map_regions_and_selection_by_item_id(embedded_app):
    from adde_core.project import Project

    at, root = embedded_app
    assert not at.exception
    assert at.get("plotly_chart"), "the map is drawn"
    regions = at.dataframe
    assert regions, "the sparse-region list is shown"
    # AppTest cannot click a chart: simulate a box selection event carrying item ids in customdata.
    ids = sorted(Project.open(root).items()["id"].sample(2, random_state=0))
    at.session_state["explore_map"] = {"selection": {"points": [{"customdata": [i]} for i in ids]
                                                     + [{"customdata": ["region:x"]}], "box": [], "lasso": []}}
    at.run()
    assert not at.exception
    assert any(h.value.startswith("Selection: 2 items") for h in at.subheader)
    assert any(c.value.startswith(" ".join(sorted(ids))) for c in at.code)


def test_diversity_page_cards_and_tables(embedded_app):
    at, _ = embedded_app
    at.switch_page("pages/diversity.py").run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert any(lab.startswith("Vendi (q=1") for lab in labels) and "Coverage of val (k=5)" in labels
    assert all(m.help for m in at.metric if m.label != "Iteration"), "every number carries its meaning"
    assert len(at.dataframe) == 2  # subgroup table and per-cluster table


def test_kmeans_option_reclusters_with_k_clusters(embedded_app):
    at, _ = embedded_app
    method = next(s for s in at.selectbox if s.label == "Method")
    method.set_value("kmeans").run()
    k = next(n for n in at.number_input if n.label == "k")
    k.set_value(4).run()
    assert not at.exception
    assert any("· 4 clusters ·" in c.value for c in at.caption)
