"""A one-line note on how much the cluster colours can be trusted: noise share, largest cluster, its label purity."""

from __future__ import annotations

import numpy as np
import streamlit as st

from adde_core.analysis import AnalysisResult
from adde_core.ui.text import md

#: Above this share of all items the largest cluster is called out as one that likely mixes kinds.
LARGE_CLUSTER_SHARE = 0.3
#: Above this share of noise the note says grey points are unclustered rather than rare.
HIGH_NOISE_SHARE = 0.25


def cluster_quality_text(result: AnalysisResult) -> str:
    """The note as plain text, e.g. ``"21 clusters (HDBSCAN) · noise 14% of items · largest C0 holds 12%"``.

    Only visible labels are used (the labelled items in each cluster), never hidden oracle labels.
    """
    clusters = result.clusters
    labels = np.asarray(clusters.labels)
    n = len(labels)
    if n == 0:
        return "No items clustered."
    cfg = clusters.config
    method = "HDBSCAN" if cfg.method == "hdbscan" else f"k-means, k={cfg.n_clusters}"
    parts = [f"{clusters.n_clusters} clusters ({method})"]
    if cfg.method == "hdbscan":
        noise = float(np.mean(clusters.raw_labels < 0))
        where = "shown grey" if cfg.noise == "keep" else "joined to their nearest cluster"
        parts.append(f"noise {noise:.0%} of items ({where})")
    clustered = labels[labels >= 0]
    if clustered.size:
        sizes = np.bincount(clustered)
        top = int(np.argmax(sizes))
        share = sizes[top] / n
        text = f"largest C{top} holds {share:.0%}"
        table = result.cluster_table
        row = table[table["cluster"] == top] if "cluster" in table else table.iloc[0:0]
        if not row.empty and int(row["n_labelled"].iloc[0]) > 0:
            text += (f", its {int(row['n_labelled'].iloc[0])} labelled items "
                     f"{float(row['dominant_label_share'].iloc[0]):.0%} one label")
        parts.append(text)
        if share > LARGE_CLUSTER_SHARE:
            parts.append("colours there may mix kinds: try k-means or a smaller min cluster size")
    if cfg.method == "hdbscan" and float(np.mean(clusters.raw_labels < 0)) > HIGH_NOISE_SHARE:
        parts.append("much noise: grey is 'unclustered', not 'rare'")
    return " · ".join(parts)


def cluster_note(result: AnalysisResult) -> None:
    """Show :func:`cluster_quality_text` as a caption next to the map (as text, never Markdown)."""
    st.caption(md(cluster_quality_text(result)))
