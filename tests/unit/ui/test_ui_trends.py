"""Trends figures and text: a legend per panel with named curves and units, sentences, CSV, the evolving map."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from adde_core.ui.trends import (MAP_COLOURINGS, TREND_PANELS, curves_csv, evolving_map_figure, iteration_sentence,
                                 legend_id, trends_figure)


def _history(n: int = 3, *, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    columns = [c for p in TREND_PANELS for c, _ in p.series if c not in drop]
    frame = pd.DataFrame(rng.uniform(0.1, 0.9, (n, len(columns))), columns=columns)
    frame["labels_spent"] = np.arange(n) * 40 if "labels_spent" in frame else None
    frame.insert(0, "iteration", np.arange(n))
    frame["effects"] = [[] for _ in range(n)]  # non-metric columns the history also has
    return frame


def _panel_traces(fig, k: int):
    """The traces drawn in panel ``k``: those on its x axis (a right-hand y axis shares it)."""
    return [t for t in fig.data if t.xaxis == ("x" if k == 0 else f"x{k + 1}")]


def test_every_panel_shows_its_named_curves_in_its_own_legend():
    fig = trends_figure(_history())
    legends = set()
    for k, panel in enumerate(TREND_PANELS):
        traces = _panel_traces(fig, k)
        assert [t.name for t in traces] == [name for _, name in panel.series], panel.title
        assert all(t.name and t.showlegend for t in traces), panel.title
        assert {t.legend for t in traces} == {legend_id(k)}, panel.title  # this panel's legend, no other's
        legend = fig.layout[legend_id(k)]
        axes = fig.get_subplot(k // 2 + 1, k % 2 + 1)
        # Under its own panel: starts at the panel's left edge, just below the panel.
        assert legend.x == pytest.approx(axes.xaxis.domain[0])
        assert axes.yaxis.domain[0] - 0.05 < legend.y < axes.yaxis.domain[0]
        legends.add(legend_id(k))
    assert len(legends) == len(TREND_PANELS) and fig.layout.showlegend is True


def test_the_iteration_axis_starts_at_0_with_whole_steps_even_for_one_iteration():
    for n, last in ((1, 1), (4, 3)):  # one iteration: 0..1, not Plotly's -1..1
        fig = trends_figure(_history(n))
        for k in range(len(TREND_PANELS)):
            axis = fig.layout["xaxis" if k == 0 else f"xaxis{k + 1}"]
            assert axis.dtick == 1 and axis.range[0] == pytest.approx(-0.3) and axis.range[1] == pytest.approx(last + 0.3)


def test_every_panel_says_its_unit_and_rates_read_as_percentages():
    fig = trends_figure(_history())
    for k, panel in enumerate(TREND_PANELS):
        axes = fig.get_subplot(k // 2 + 1, k % 2 + 1)
        assert axes.yaxis.title.text == panel.unit
    quality = fig.get_subplot(1, 1).yaxis
    assert quality.tickformat == "~%" and "%" in quality.title.text
    assert "count" in fig.get_subplot(3, 2).yaxis.title.text  # labels spent
    weights = [t for t in _panel_traces(fig, 5) if t.name in ("α", "β", "γ")]
    assert weights and all(t.yaxis == "y7" for t in weights)  # the weights' own axis, over the panel's
    assert fig.layout.yaxis7.overlaying == "y6" and fig.layout.yaxis7.title.text.startswith("weight")
    assert fig.get_subplot(1, 1).xaxis.domain == (0.0, 0.45)  # no panel gives up width to that axis
    assert all("%{y:.1%}" in t.hovertemplate for t in _panel_traces(fig, 0))


def test_missing_metrics_are_not_drawn_and_the_rest_keep_their_legends():
    fig = trends_figure(_history(2, drop=("ood_accuracy", "vendi_q", "vendi_q1")))
    assert [t.name for t in _panel_traces(fig, 0)] == ["val accuracy", "val macro-F1"]
    assert _panel_traces(fig, 2) == []
    assert all(t.legend == legend_id(k) for k in range(len(TREND_PANELS)) for t in _panel_traces(fig, k))


def test_curves_csv_round_trips_every_drawn_curve():
    history = _history(drop=("ood_accuracy",))
    history["ood_accuracy"] = np.nan  # recorded as missing: not a curve
    back = pd.read_csv(io.StringIO(curves_csv(history)))
    drawn = [c for p in TREND_PANELS for c, _ in p.series if c != "ood_accuracy"]
    assert list(back.columns) == ["iteration", *drawn]
    pd.testing.assert_frame_equal(back, history[["iteration", *drawn]], check_dtype=False)


def _summary(index=1, added=None, metrics=None, effects=(), stop_reason=None):
    return SimpleNamespace(index=index, added={"pool": 8} if added is None else added,
                           metrics=metrics if metrics is not None else {"val_accuracy": 0.831},
                           effects=list(effects), stop_reason=stop_reason)


def test_iteration_sentence_reads_as_a_sentence():
    history = pd.DataFrame({"iteration": [0, 1], "val_accuracy": [0.827, 0.831]})
    assert iteration_sentence(_summary(), history) == "Iteration 1: added 8 pool items; val accuracy 82.7% → 83.1%."


def test_iteration_sentence_counts_sources_worst_group_effects_and_the_stop():
    history = pd.DataFrame({"iteration": [0, 1, 2], "val_accuracy": [0.5, 0.6, 0.7],
                            "fair_worst_group_accuracy": [0.2, 0.25, 0.5]})
    summary = _summary(2, {"pool": 12, "synthetic": 1}, {"val_accuracy": 0.7, "fair_worst_group_accuracy": 0.5},
                       ["α up", "β down", "γ same", "not shown"], "label budget reached")
    assert iteration_sentence(summary, history) == (
        "Iteration 2: added 12 pool items and 1 synthetic item; val accuracy 60.0% → 70.0%; "
        "worst-group accuracy 25.0% → 50.0%. Stopped: label budget reached\n\nα up · β down · γ same")


def test_iteration_sentence_without_additions_or_earlier_numbers():
    empty = pd.DataFrame({"iteration": [1]})
    assert iteration_sentence(_summary(1, {}, {"val_accuracy": 0.9}), empty) == (
        "Iteration 1: added nothing; val accuracy 90.0%.")
    assert iteration_sentence(_summary(1, {"pool": 0}, {}), empty) == "Iteration 1: added nothing."


def _map_inputs():
    ids = [f"i{k}" for k in range(8)]
    coords = pd.DataFrame({"id": ids, "x": np.arange(8.0), "y": np.arange(8.0)})
    items = pd.DataFrame({"id": ids, "role": ["seed"] * 6 + ["pool", "val"],
                          "label": ["cat", "dog", "cat", "dog", "cat", "dog", None, "cat"],
                          "source": ["real", "real", "pool", "synthetic", "pool", "pool", "pool", "real"],
                          "iteration_added": [0, 0, 1, 1, 2, 2, np.nan, np.nan]})
    return coords, items


def _ids(trace) -> list[str]:
    return sorted(np.asarray(trace.customdata)[:, 0]) if trace.customdata is not None else []


def test_evolving_map_colours_items_by_the_iteration_they_joined():
    coords, items = _map_inputs()
    fig = evolving_map_figure(coords, items, 1)
    by_name = {t.name: t for t in fig.data}
    assert _ids(by_name["seed (iteration 0)"]) == ["i0", "i1"]
    assert _ids(by_name["joined at iteration 1"]) == ["i2", "i3"]
    assert "joined at iteration 2" not in by_name  # not in D_1 yet: drawn grey with the rest
    assert len(by_name["not in D_t (pool, val, …)"].x) == 4
    assert len(by_name["added at iteration 1 (ring)"].x) == 2
    assert "synthetic (generated)" in by_name  # i3 is generated: a legend entry for its symbol
    assert list(by_name["joined at iteration 1"].marker.symbol) == ["circle", "diamond"]
    assert all(t.name and t.showlegend is not False for t in fig.data)
    assert by_name["seed (iteration 0)"].marker.color != by_name["joined at iteration 1"].marker.color


def test_evolving_map_by_label_and_data_strings_stay_out_of_the_hover_template():
    coords, items = _map_inputs()
    items.loc[0, "label"] = "<b>cat</b>"
    fig = evolving_map_figure(coords, items, 2, colour_by="label")
    names = [t.name for t in fig.data]
    # Legend names are Plotly text (an HTML subset): the label is written so that it shows as typed.
    assert names[:4] == ["not in D_t (pool, val, …)", "&lt;b&gt;cat&lt;/b&gt;", "cat", "dog"]
    assert all("<b>cat" not in (t.hovertemplate or "") for t in fig.data)
    assert MAP_COLOURINGS == ("iteration joined", "label")
    with pytest.raises(ValueError, match="colour_by"):
        evolving_map_figure(coords, items, 2, colour_by="cluster")


def test_sidebar_follows_a_page_that_moves_the_loop_on():
    from streamlit.testing.v1 import AppTest

    def script():
        import pandas as pd
        import streamlit as st

        from adde_core.ui.sidebar import render_sidebar

        class Stub:  # what the sidebar reads of a Project
            name, root = "stub", "/tmp/stub"
            current_iteration = st.session_state.setdefault("t", 0)

            def counts(self):
                return pd.DataFrame({"role": ["seed"], "source": ["real"], "n": [10 + self.current_iteration]})

        project = Stub()
        refresh = render_sidebar(project)
        if st.button("step"):  # the page moves the loop on after the sidebar was drawn
            project.current_iteration = st.session_state["t"] = st.session_state["t"] + 1
        refresh()

    at = AppTest.from_function(script).run()
    assert at.sidebar.metric[0].value == "0"
    at.button[0].click().run()
    assert not at.exception
    assert [m.value for m in at.sidebar.metric] == ["1"]  # redrawn in place, not drawn twice
    assert at.sidebar.table[0].value.loc["seed", "total"] == 11

