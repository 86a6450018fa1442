"""The map past MAP_DRAW_MAX: a uniform sample drawn, selections resolved by geometry over every item."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adde_core.ui.figures import drawn_points, latent_map_figure, selected_ids


def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    xy = rng.uniform(-10, 10, size=(n, 2))
    return pd.DataFrame({"id": np.char.add("i", np.arange(n).astype(str)), "x": xy[:, 0], "y": xy[:, 1],
                         "cluster": "C0", "label": "(unlabelled)", "role": "pool"})


def test_small_maps_draw_every_point_and_select_by_customdata():
    f = frame(500)
    assert drawn_points(f, 1_000) is f
    event = {"selection": {"points": [{"customdata": ["i3"]}, {"customdata": ["region:x"]}],
                           "box": [{"x": [-10, 10], "y": [-10, 10]}], "lasso": []}}
    assert selected_ids(event, f, max_points=1_000) == ["i3"]  # unchanged: the drawn points are all the points


def test_large_maps_draw_a_sample_with_the_highlight():
    f = frame(5_000)
    keep = {"i1", "i2", "i4999"}
    drawn = drawn_points(f, 1_000, keep)
    assert 1_000 <= len(drawn) <= 1_003 and keep <= set(drawn["id"])
    fig = latent_map_figure(f, color_by="cluster", highlight=keep, max_points=1_000)
    assert sum(len(t.x) for t in fig.data if t.name != "selected region") == len(drawn)
    # A uniform sample keeps each quadrant's share of the points.
    share = (drawn["x"] > 0).mean()
    assert abs(share - (f["x"] > 0).mean()) < 0.05


def test_box_and_lasso_select_every_item_inside_them():
    f = frame(5_000)
    x, y = f["x"].to_numpy(), f["y"].to_numpy()
    box = {"selection": {"points": [], "box": [{"x": [2, -1], "y": [0, 3]}], "lasso": []}}
    want = f["id"][(x >= -1) & (x <= 2) & (y >= 0) & (y <= 3)]
    assert selected_ids(box, f, max_points=1_000) == want.tolist()
    # A lasso triangle (0,0), (4,0), (0,4): the points with x, y > 0 and x + y < 4.
    lasso = {"selection": {"points": [{"customdata": ["i0", "(unlabelled)"]}], "box": [],
                           "lasso": [{"x": [0, 4, 0], "y": [0, 0, 4]}]}}
    inside = f["id"][(x > 0) & (y > 0) & (x + y < 4)].tolist()
    got = selected_ids(lasso, f, max_points=1_000)
    assert set(got) == set(inside) | {"i0"} and len(got) == len(set(got))
