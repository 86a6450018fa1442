"""Plotly figure builders for the latent map (points identified by item id, never by index)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from adde_core.analysis import AnalysisResult
from adde_core.analysis.density import fit_sample
from adde_core.ui.text import plotly_text

#: Ways to colour the map; "subgroup" resolves to the project's subgroup attribute.
COLOR_BY = ("cluster", "label", "subgroup", "role", "source", "iteration", "density")
#: Kept short on purpose: hover text is sent for every point (6.6 MB at 100k with five fields).
HOVER_FIELDS = ("id", "label", "role")
REGION_PREFIX = "region:"
#: Most item points the map draws. Past it the figure draws a uniform random sample of this many
#: (uniform, so every area keeps its share of the points and the picture's density is the same)
#: plus the highlighted items, and a box or lasso selects by its geometry over every item
#: (:func:`selected_ids` with the frame), so nothing is missed. Measured in headless Chromium on 2
#: shared cores at load 4-5 (benchmarks/selection_latency.py, docs/scale.md): at 10^6 items Plotly
#: WebGL with every point took 43 s to first render and 20.8 s from box selection to panel; with
#: this sample, 12.1 s and 2.7 s (10^5 items drawn in full: 10.5 s and 2.3 s in the same run).
MAP_DRAW_MAX = 100_000
_LEGEND = "_legend"  # the colour column as Plotly text; the raw column stays for customdata and selection


def map_frame(result: AnalysisResult, subgroup: str | None) -> pd.DataFrame:
    """One row per mapped item: coordinates, fields to colour and hover by."""
    items = result.items
    frame = pd.DataFrame({
        "id": items["id"].to_numpy(),
        "x": result.coords[:, 0],
        "y": result.coords[:, 1],
        "cluster": np.where(items["cluster"] < 0, "noise", "C" + items["cluster"].astype(str)),
        "label": items["label"].fillna("(unlabelled)").to_numpy(),
        "role": items["role"].to_numpy(),
        "source": items["source"].to_numpy(),
        "iteration": items["iteration_added"].astype(str).to_numpy(),
        # Mean distance to the k nearest neighbours: high means the item sits in a thin area.
        "density": -np.log(np.maximum(result.regions.knn_distance, 1e-12)),
    })
    if subgroup and subgroup in items:
        frame["subgroup"] = items[subgroup].fillna("(none)").astype(str).to_numpy()
    return frame


def drawn_points(frame: pd.DataFrame, max_points: int | None = MAP_DRAW_MAX,
                 keep: set[str] | None = None) -> pd.DataFrame:
    """The rows of ``frame`` the map draws: all of them up to ``max_points``, else a seeded uniform sample plus ``keep``."""
    if max_points is None or len(frame) <= max_points:
        return frame
    take = np.zeros(len(frame), dtype=bool)
    take[fit_sample(len(frame), max_points, 0)] = True
    if keep:
        take |= frame["id"].isin(keep).to_numpy()
    return frame[take]


def latent_map_figure(frame: pd.DataFrame, *, color_by: str, regions: pd.DataFrame | None = None,
                      highlight: set[str] | None = None, height: int = 640,
                      max_points: int | None = MAP_DRAW_MAX) -> go.Figure:
    """A WebGL scatter of the map with sparse regions marked, ready for box/lasso selection.

    Every point carries its item id as ``customdata[0]`` and its label as
    ``customdata[1]`` (the hover thumbnail's caption reads them); region markers carry
    ``"region:<id>"`` so that selection code can tell them apart. Past ``max_points``
    items only a uniform sample is drawn (:func:`drawn_points`); select with
    ``selected_ids(event, frame)`` so a box or lasso still selects every item inside it.
    """
    frame = drawn_points(frame, max_points, highlight)
    color = color_by if color_by in frame else "cluster"
    hover = [c for c in HOVER_FIELDS if c in frame and c != color]
    if color != "density":
        # Category values become legend names and literal parts of the hover template, which
        # Plotly reads as HTML (and "%{...}" as a placeholder): plot an escaped copy of the column.
        frame = frame.assign(**{_LEGEND: frame[color].astype(str).map(plotly_text)})
    kwargs = {"color_continuous_scale": "Viridis"} if color == "density" else {
        "labels": {_LEGEND: color},
        "category_orders": {_LEGEND: sorted(frame[_LEGEND].unique(), key=_natural)},
        # 48 distinct colours: the default 10 repeat, and then C0 and C10 look like one cluster.
        "color_discrete_sequence": px.colors.qualitative.Dark24 + px.colors.qualitative.Light24,
        # Noise and unlabelled points are context, not categories: draw them grey.
        "color_discrete_map": {"noise": "lightgrey", "(unlabelled)": "lightgrey", "(none)": "lightgrey"}}
    color = color if color == "density" else _LEGEND
    # Plotly Express shares customdata columns with hover_data, so "label" costs nothing
    # extra unless the map is coloured by label.
    custom = [c for c in ("id", "label") if c in frame]
    fig = px.scatter(frame, x="x", y="y", color=color, custom_data=custom, hover_data=hover,
                     render_mode="webgl", height=height, **kwargs)
    fig.update_traces(marker={"size": 4, "opacity": 0.75})
    if highlight:
        sel = frame[frame["id"].isin(highlight)]
        fig.add_trace(go.Scattergl(x=sel["x"], y=sel["y"], mode="markers", name="selected region",
                                   customdata=sel[["id"]].to_numpy(), hoverinfo="skip",
                                   marker={"size": 9, "color": "rgba(0,0,0,0)", "line": {"width": 1.5, "color": "black"}}))
    if regions is not None and not regions.empty:
        shown = regions.dropna(subset=["x", "y"])
        fig.add_trace(go.Scatter(
            x=shown["x"], y=shown["y"], mode="markers+text", name="sparse regions",
            text=[f"R{r}" for r in shown["rank"]], textposition="top center",
            customdata=[[f"{REGION_PREFIX}{r}"] for r in shown["region_id"]],
            hovertext=[plotly_text(f"R{r.rank} {r.kind} ×{r.score:.1f}: {r.reason}") for r in shown.itertuples()],
            hoverinfo="text", marker={"symbol": "star", "size": 16, "color": "crimson",
                                      "line": {"width": 1, "color": "white"}},
        ))
    # A constant uirevision keeps the user's zoom and chosen drag tool across the rerun
    # that every selection triggers; without it the view snaps back after each selection.
    fig.update_layout(dragmode="lasso", uirevision="latent-map", legend={"itemsizing": "constant"}, margin={"l": 0, "r": 0, "t": 30, "b": 0},
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"})
    return fig


def selected_ids(event: object, frame: pd.DataFrame | None = None, *,
                 max_points: int | None = MAP_DRAW_MAX) -> list[str]:
    """Item ids in a ``st.plotly_chart`` selection event, read from customdata (never point indices).

    Parameters
    ----------
    event
        The chart's selection event.
    frame
        The map frame the figure was built from (``id``, ``x``, ``y``). When it holds more
        than ``max_points`` items the figure drew only a sample, so the event's boxes and
        lassos are applied to every row of ``frame`` instead; clicked points still count.
    max_points
        The figure's ``max_points``.
    """
    selection = (event or {}).get("selection") or {}
    ids: list[str] = []
    if frame is not None and max_points is not None and len(frame) > max_points:
        inside = _inside_shapes(frame["x"].to_numpy(np.float64), frame["y"].to_numpy(np.float64),
                                selection.get("box") or [], selection.get("lasso") or [])
        ids = frame["id"].to_numpy()[inside].astype(str).tolist()
    for p in selection.get("points") or []:
        data = p.get("customdata")
        item = data[0] if isinstance(data, (list, tuple)) and data else data
        if isinstance(item, str) and not item.startswith(REGION_PREFIX):
            ids.append(item)
    return list(dict.fromkeys(ids))


def _inside_shapes(x: np.ndarray, y: np.ndarray, boxes: list, lassos: list) -> np.ndarray:
    """Which points lie in any of Plotly's selection boxes (``x``/``y`` ranges) or lasso polygons."""
    inside = np.zeros(len(x), dtype=bool)
    for box in boxes:
        (x0, x1), (y0, y1) = sorted(box["x"][:2]), sorted(box["y"][:2])
        inside |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    for lasso in lassos:
        px, py = np.asarray(lasso["x"], np.float64), np.asarray(lasso["y"], np.float64)
        if len(px) < 3:
            continue
        # Even-odd ray casting, only over the points inside the polygon's bounding box.
        cand = np.flatnonzero((x >= px.min()) & (x <= px.max()) & (y >= py.min()) & (y <= py.max()))
        cx, cy = x[cand], y[cand]
        odd = np.zeros(len(cand), dtype=bool)
        for xa, ya, xb, yb in zip(px, py, np.roll(px, -1), np.roll(py, -1)):
            crosses = (ya > cy) != (yb > cy)
            with np.errstate(divide="ignore", invalid="ignore"):
                at = xa + (cy - ya) * (xb - xa) / (yb - ya)
            odd ^= crosses & (cx < at)
        inside[cand[odd]] = True
    return inside


def _natural(value: str) -> tuple:
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return (0, int(digits), str(value)) if digits and str(value)[0] in "C" else (1, 0, str(value))
