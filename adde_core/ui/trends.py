"""Figures for the Trends page: metric curves over iterations and the evolving latent map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from adde_core.ui.text import plotly_text

@dataclass(frozen=True)
class TrendPanel:
    """One panel of the trend figure: its title, its curves and the unit they share.

    ``series`` holds ``(column, legend name)`` pairs; ``unit`` titles the y axis and
    ``tickformat`` / ``hoverformat`` are d3 formats ("~%" shows fractions as percentages).
    Columns listed in ``right`` are drawn against a second y axis on the right, titled ``right_unit``.
    """

    title: str
    series: tuple[tuple[str, str], ...]
    unit: str
    tickformat: str = "~%"
    hoverformat: str = ".1%"
    right: tuple[str, ...] = ()
    right_unit: str = ""


#: Panels of the trend figure, in display order (two per row).
TREND_PANELS: tuple[TrendPanel, ...] = (
    TrendPanel("Quality (val / OOD)", (("val_accuracy", "val accuracy"), ("val_macro_f1", "val macro-F1"),
                                       ("ood_accuracy", "OOD accuracy")), "%"),
    TrendPanel("Fairness over the subgroup (val)", (("fair_worst_group_accuracy", "worst-group accuracy"),
                                                    ("fair_group_accuracy_gap", "accuracy gap"),
                                                    ("fair_equalized_odds_difference", "equalized-odds diff."),
                                                    ("fair_demographic_parity_difference", "demographic-parity diff.")),
               "% (gaps in points)"),
    TrendPanel("Diversity of D_t", (("vendi_q1", "Vendi q=1"), ("vendi_q", "Vendi q (user)")),
               "effective items", tickformat="", hoverformat=".1f"),
    TrendPanel("Coverage and balance", (("cluster_entropy", "cluster entropy (of max.)"),
                                        ("coverage_val", "kNN coverage of val"),
                                        ("label_consistency", "label consistency")), "%"),
    TrendPanel("Bias amplification (val)", (("bias_max_abs_gap", "max |pred − true rate|"),
                                            ("bias_mean_abs_gap", "mean |pred − true rate|")), "points (%)"),
    # Where each round's labels went (ADDE's split: failure-targeted coverage vs generation) next to the totals.
    TrendPanel("Labels and weights", (("labels_spent", "labels spent"),
                                      ("arm_labels_coverage", "this round: coverage"),
                                      ("arm_labels_generate", "this round: generation"),
                                      ("alpha", "α"), ("beta", "β"),
                                      ("gamma", "γ")), "labels (count)", tickformat="", hoverformat=",d",
               right=("alpha", "beta", "gamma"), right_unit="weight (0–1)"),
)

# Each panel's legend is a column of entries under the panel, below its x tick labels: plotly wraps a
# horizontal legend at the width of the whole figure, so one would run into the next panel.
_HEIGHT, _MARGIN = 1210, {"l": 60, "r": 60, "t": 40, "b": 160}  # the last panel's legend has 6 entries
_LEGEND_GAP_PX = 26  # between a panel's bottom edge and its legend: room for the tick labels
_VERTICAL_SPACING = 0.14  # of the plot height (1,010 px): tick labels, a 4-entry legend and the next title


def legend_id(k: int) -> str:
    """Name of panel ``k``'s own legend: ``legend`` for the first, then ``legend2``, ``legend3``, ..."""
    return "legend" if k == 0 else f"legend{k + 1}"


def trends_figure(history: pd.DataFrame) -> go.Figure:
    """One small panel per metric group, x = iteration; missing metrics are simply not drawn.

    Every panel has its own legend (plotly's ``legend``, ``legend2``, ...) placed under it,
    and its y axes say the unit. Fractions are shown as percentages.
    """
    fig = make_subplots(rows=3, cols=2, subplot_titles=[p.title for p in TREND_PANELS], horizontal_spacing=0.1,
                        vertical_spacing=_VERTICAL_SPACING)
    plot_height = _HEIGHT - _MARGIN["t"] - _MARGIN["b"]
    layout: dict[str, Any] = {}
    n_axes = len(TREND_PANELS)
    for k, panel in enumerate(TREND_PANELS):
        row, col = k // 2 + 1, k % 2 + 1
        axes = fig.get_subplot(row, col)
        y_left = axes.xaxis.anchor  # "y", "y2", ...
        y_right = None
        if panel.right:  # an overlaying axis of its own, so no other panel loses width to it
            n_axes += 1
            y_right = f"y{n_axes}"
            layout[f"yaxis{n_axes}"] = {"overlaying": y_left, "anchor": axes.yaxis.anchor, "side": "right",
                                        "title": {"text": panel.right_unit}, "tickformat": ".2~f", "showgrid": False}
        for column, name in panel.series:
            if column not in history or history[column].isna().all():
                continue
            right = column in panel.right
            fmt = ".2f" if right else panel.hoverformat
            trace = go.Scatter(x=history["iteration"], y=history[column], mode="lines+markers", name=name,
                               legend=legend_id(k), showlegend=True,
                               hovertemplate=f"{name}: %{{y:{fmt}}}<extra>iteration %{{x}}</extra>")
            fig.add_trace(trace, row=row, col=col)
            if right:
                fig.data[-1].yaxis = y_right
        fig.update_yaxes(title_text=panel.unit, tickformat=panel.tickformat, row=row, col=col)
        # Under the panel, below its tick labels: the figure height is fixed, so pixels convert exactly.
        layout[legend_id(k)] = {"orientation": "v", "x": axes.xaxis.domain[0], "xanchor": "left",
                                "y": axes.yaxis.domain[0] - _LEGEND_GAP_PX / plot_height, "yanchor": "top",
                                "font": {"size": 11}, "bgcolor": "rgba(0,0,0,0)"}
    # Iterations are whole numbers from 0: with one iteration Plotly's autorange would span -1 to 1.
    last = int(pd.to_numeric(history["iteration"], errors="coerce").max()) if "iteration" in history and \
        history["iteration"].notna().any() else 0
    fig.update_xaxes(dtick=1, title_text=None, range=[-0.3, max(last, 1) + 0.3])
    fig.update_layout(height=_HEIGHT, margin=_MARGIN, showlegend=True, **layout)
    return fig


def curves_csv(history: pd.DataFrame) -> str:
    """Every drawn curve as CSV: ``iteration`` and each metric column of the trend panels that has a value.

    Values are as recorded (fractions, not percentages), one row per iteration.
    """
    columns = ["iteration"] + [c for p in TREND_PANELS for c, _ in p.series
                               if c in history and not history[c].isna().all()]
    return history[columns].to_csv(index=False)


def _pct(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def _items(added: dict[str, int]) -> str:
    parts = [f"{n:,} {source} item{'s' if n != 1 else ''}" for source, n in sorted(added.items()) if n]
    if not parts:
        return "nothing"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def iteration_sentence(summary: Any, history: pd.DataFrame, *, effects: int = 3) -> str:
    """What one step did, as a sentence.

    E.g. "Iteration 1: added 8 pool items; val accuracy 82.7% → 83.1%; worst-group accuracy
    50.0% → 62.5%. Stopped: label budget reached.", then the first ``effects`` effect lines
    as a second paragraph.

    Parameters
    ----------
    summary
        The step's :class:`adde_core.loop.engine.IterationSummary` (``index``, ``added``
        (source → count), ``metrics``, ``effects``, ``stop_reason``).
    history
        The metrics history (one row per iteration); the previous iteration's numbers come from it.
    effects
        How many of the step's effect lines to append.
    """
    previous = history.loc[history["iteration"] == summary.index - 1] if "iteration" in history else history.iloc[:0]
    text = f"Iteration {summary.index}: added {_items(summary.added)}"
    for column, name in (("val_accuracy", "val accuracy"), ("fair_worst_group_accuracy", "worst-group accuracy")):
        after = _pct(summary.metrics.get(column))
        if after is None:
            continue
        before = _pct(previous[column].iloc[0]) if column in previous and len(previous) else None
        text += f"; {name} {before} → {after}" if before else f"; {name} {after}"
    text += "."
    if summary.stop_reason:
        text += f" Stopped: {summary.stop_reason}"
    if summary.effects and effects:  # what the step adapted, as its own paragraph
        text += "\n\n" + " · ".join(summary.effects[:effects])
    return text


def iteration_headline(iteration: int, n_valid: int) -> str:
    """The Trends page's status line (Markdown; both numbers are ints)."""
    return f"**Iteration {iteration}** · D_valid so far: **{n_valid:,}** accepted or relabelled items"


#: How the evolving map colours D_t: by the iteration an item joined, or by its label.
MAP_COLOURINGS = ("iteration joined", "label")


def _joined_name(t: int) -> str:
    return "seed (iteration 0)" if t == 0 else f"joined at iteration {t}"


def evolving_map_figure(coords: pd.DataFrame, items: pd.DataFrame, iteration: int, *,
                        colour_by: str = "iteration joined") -> go.Figure:
    """D_t at ``iteration`` on the stable map, coloured by when each item joined (or by label).

    ``coords`` has ``id``, ``x``, ``y`` (the saved latent map); ``items`` has ``id``, ``role``,
    ``label``, ``source`` and ``iteration_added``. Points keep their coordinates across
    iterations because the map is only ever extended. Items added at ``iteration`` get a
    red ring; synthetic items are diamonds. Every group is a named legend entry.
    """
    if colour_by not in MAP_COLOURINGS:
        raise ValueError(f"colour_by must be one of {MAP_COLOURINGS}, got {colour_by!r}")
    frame = coords.merge(items, on="id", how="inner")
    in_dataset = (frame["role"] == "seed") & (frame["iteration_added"] <= iteration)
    new = in_dataset & (frame["iteration_added"] == iteration) & (iteration > 0)
    fig = go.Figure()
    rest = frame[~in_dataset]
    fig.add_trace(go.Scattergl(x=rest["x"], y=rest["y"], mode="markers", name="not in D_t (pool, val, …)",
                               marker={"size": 3, "color": "rgba(160,160,160,0.25)"}, hoverinfo="skip"))
    data = frame[in_dataset].assign(joined=lambda f: f["iteration_added"].astype(int))
    # Labels, ids and sources travel as customdata and are shown as text, never inside the template.
    hover = ("%{customdata[0]}<br>%{customdata[1]} (%{customdata[3]})<br>joined at iteration %{customdata[2]}"
             "<extra></extra>")
    if colour_by == "iteration joined":
        groups = list(data.groupby("joined", sort=True))
        palette = sample_colorscale("Viridis", [k / max(len(groups) - 1, 1) for k in range(len(groups))])
        named = [(_joined_name(int(t)), part, colour) for (t, part), colour in zip(groups, palette)]
    else:
        # Legend names are Plotly text (a small HTML subset): a label is shown as what it says.
        named = [(plotly_text(label), part, None) for label, part in data.groupby("label", sort=True)]
    for name, part, colour in named:
        symbols = np.where(part["source"] == "synthetic", "diamond", "circle")
        fig.add_trace(go.Scattergl(x=part["x"], y=part["y"], mode="markers", name=name,
                                   marker={"size": 6, "opacity": 0.85, "symbol": symbols,
                                           **({"color": colour} if colour else {})},
                                   customdata=part[["id", "label", "joined", "source"]], hovertemplate=hover))
    if (data["source"] == "synthetic").any():  # a legend entry for the diamond, drawn nowhere
        fig.add_trace(go.Scattergl(x=[None], y=[None], mode="markers", name="synthetic (generated)",
                                   marker={"size": 7, "symbol": "diamond", "color": "#888"}, hoverinfo="skip"))
    added = frame[new]
    if len(added):
        fig.add_trace(go.Scattergl(
            x=added["x"], y=added["y"], mode="markers", name=f"added at iteration {iteration} (ring)",
            marker={"size": 11, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#d62728"}},
            hoverinfo="skip"))
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, uirevision="evolving-map",
                      legend={"title": {"text": "Colour: " + colour_by}},
                      title=f"D_{iteration}: {int(in_dataset.sum()):,} items ({int(new.sum())} added at this iteration)")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
