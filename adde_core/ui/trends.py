"""Figures for the Trends page: metric curves over iterations and the evolving latent map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

#: Panels of the trend figure: title and (column, legend name) pairs, in display order.
TREND_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Quality (val / OOD)", (("val_accuracy", "val accuracy"), ("val_macro_f1", "val macro-F1"),
                             ("ood_accuracy", "OOD accuracy"))),
    ("Fairness over the subgroup (val)", (("fair_worst_group_accuracy", "worst-group accuracy"),
                                          ("fair_group_accuracy_gap", "accuracy gap"),
                                          ("fair_equalized_odds_difference", "equalized-odds diff."),
                                          ("fair_demographic_parity_difference", "demographic-parity diff."))),
    ("Diversity of D_t", (("vendi_q1", "Vendi q=1"), ("vendi_q", "Vendi q (user)"))),
    ("Coverage and balance", (("cluster_entropy", "cluster entropy (norm.)"), ("coverage_val", "kNN coverage of val"),
                              ("label_consistency", "label consistency"))),
    ("Bias amplification (val)", (("bias_max_abs_gap", "max |pred − true rate|"),
                                  ("bias_mean_abs_gap", "mean |pred − true rate|"))),
    ("Labels and weights", (("labels_spent", "labels spent"), ("alpha", "α"), ("beta", "β"), ("gamma", "γ"))),
)


def trends_figure(history: pd.DataFrame) -> go.Figure:
    """One small panel per metric group, x = iteration; missing metrics are simply not drawn."""
    fig = make_subplots(rows=3, cols=2, subplot_titles=[t for t, _ in TREND_PANELS], horizontal_spacing=0.08,
                        vertical_spacing=0.12, specs=[[{}, {}], [{}, {}], [{}, {"secondary_y": True}]])
    for k, (_, series) in enumerate(TREND_PANELS):
        row, col = k // 2 + 1, k % 2 + 1
        for column, name in series:
            if column not in history or history[column].isna().all():
                continue
            kwargs = {"secondary_y": column != "labels_spent"} if (row, col) == (3, 2) else {}
            fig.add_trace(go.Scatter(x=history["iteration"], y=history[column], mode="lines+markers", name=name,
                                     legendgroup=str(k)), row=row, col=col, **kwargs)
    fig.update_xaxes(dtick=1, title_text=None)
    fig.update_layout(height=780, margin={"l": 40, "r": 20, "t": 40, "b": 20}, legend={"orientation": "h"})
    return fig


def evolving_map_figure(coords: pd.DataFrame, items: pd.DataFrame, iteration: int) -> go.Figure:
    """D_t at ``iteration`` on the stable map: earlier items by label, items added at t highlighted.

    ``coords`` has ``id``, ``x``, ``y`` (the saved latent map); ``items`` has ``id``, ``role``,
    ``label``, ``source`` and ``iteration_added``. Points keep their coordinates across
    iterations because the map is only ever extended.
    """
    frame = coords.merge(items, on="id", how="inner")
    in_dataset = (frame["role"] == "seed") & (frame["iteration_added"] <= iteration)
    new = in_dataset & (frame["iteration_added"] == iteration) & (iteration > 0)
    fig = go.Figure()
    rest = frame[~in_dataset]
    fig.add_trace(go.Scattergl(x=rest["x"], y=rest["y"], mode="markers", name="not in D_t (pool, val, …)",
                               marker={"size": 3, "color": "rgba(160,160,160,0.25)"}, hoverinfo="skip"))
    old = frame[in_dataset & ~new]
    for label, part in old.groupby("label", sort=True):
        fig.add_trace(go.Scattergl(x=part["x"], y=part["y"], mode="markers", name=str(label),
                                   marker={"size": 6, "opacity": 0.85}, customdata=part[["id"]],
                                   hovertemplate="%{customdata[0]}<br>" + str(label) + "<extra></extra>"))
    added = frame[new]
    if len(added):
        symbols = np.where(added["source"] == "synthetic", "diamond", "circle")
        fig.add_trace(go.Scattergl(
            x=added["x"], y=added["y"], mode="markers", name=f"added at iteration {iteration}",
            marker={"size": 11, "color": "rgba(0,0,0,0)", "symbol": symbols, "line": {"width": 2, "color": "#d62728"}},
            customdata=added[["id", "label", "source"]],
            hovertemplate="%{customdata[0]}<br>%{customdata[1]} (%{customdata[2]})<extra>added</extra>"))
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, uirevision="evolving-map",
                      title=f"D_{iteration}: {int(in_dataset.sum()):,} items ({int(new.sum())} added at this iteration)")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
