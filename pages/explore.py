"""Explore page: the latent map with clusters and sparse regions, and a panel for what you select."""

import streamlit as st

from adde_core.errors import AddeError
from adde_core.ui.acquire_panel import acquisition_panel, gate_summary
from adde_core.ui.analysis import cluster_settings_form, current_analysis, map_figure
from adde_core.ui.cluster_note import cluster_note
from adde_core.ui.figures import COLOR_BY, map_frame, selected_ids
from adde_core.ui.review import review_grid, reviewer_name, show_messages
from adde_core.ui.selection_panel import selection_panel
from adde_core.ui.state import current_project, require_shell
from adde_core.ui.text import md
from adde_core.ui.thumbnails import ensure_thumbnails, hover_thumbnails

require_shell("pages/explore.py")
project = current_project()
reviewer_name()
st.title("Explore")
sets = project.embedding_sets()
if sets.empty:
    st.info("No embeddings yet: embed the data on the **Data** page, then come back to see the map.")
    st.stop()
try:
    default_key = project.default_model_key()
except AddeError as exc:
    st.error(md(exc))
    st.stop()
keys = list(sets["model"])
c1, c2, c3 = st.columns([2, 2, 1])
model_key = c1.selectbox("Embedding", keys, index=keys.index(default_key))
color_by = c2.selectbox("Colour by", COLOR_BY, index=0)
refit = c3.button("Refit map", help="Fit a new UMAP layout once and align it to the current one (slow); "
                                    "items added later extend the refitted map.")
cluster_config = cluster_settings_form()
result = current_analysis(project, model_key, refit=refit, cluster_config=cluster_config)
subgroup = project.subgroup_attribute
frame = map_frame(result, subgroup)
plan = project.recommended_regions(model_key, map_coords=frame[["id", "x", "y"]])
regions = plan.frame()

left, right = st.columns([3, 2])
with right:
    st.markdown(f"**Sparse regions** ({len(regions)}) — in the order the loop recommends; ★ on the map")
    st.caption("Regions are found against a fixed partition of the data, so a region keeps its id across "
               "iterations; regions a reviewer marked for revisiting come first, then where the model fails "
               "most (val error, pool uncertainty, subgroup under-representation), spread over classes.")
    picked = st.dataframe(
        regions[["rank", "kind", "score", "size", "dominant_label", "n_unlabelled", "why"]],
        hide_index=True, on_select="rerun", selection_mode="single-row", key="region_table", height=320,
        column_config={"score": st.column_config.NumberColumn(
            format="%.2f", help="model_error: the share of the class's val items the model gets wrong; "
                                "the other kinds: how many times thinner the dataset is here")},
    )
    rows = picked.selection.rows if picked else []
    region = plan.regions[rows[0]] if rows else None
    if region is not None:
        st.info(md(region.description))
with left:
    fig = map_figure((str(project.root), result.fingerprint, result.map.fingerprint), color_by,
                     region.region_id if region is not None else None, frame, regions,
                     set(region.member_ids) if region is not None else None)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key="explore_map")
    hover_thumbnails(ensure_thumbnails(project))
    st.caption(f"{len(frame):,} items · {result.clusters.n_clusters} clusters · "
               f"map from {md(result.map.model_key)} (fingerprint {md(result.map.fingerprint[:10])}) · "
               "hover for a thumbnail and fields, select to see images")
    cluster_note(result)

picked = selected_ids(event, frame)  # once: past MAP_DRAW_MAX it tests every item against the box or lasso
spec = picked or region  # a selection (ids) or a detected region; the project turns either into a region
ids = picked or (list(region.member_ids) if region is not None else [])
items = project.items()
selection_panel(items, ids, subgroup=subgroup,
                title=f"Region R{rows[0] + 1}" if region is not None and not picked else "Selection")
if spec is not None:
    st.subheader("Fill this region")
    labels = project.labels()
    set_id = acquisition_panel(project, spec, key="explore_acq", labels=labels)
    if set_id is not None:
        st.markdown(f"**Candidates** (set #{set_id}) — review here or on the Review page")
        show_messages()
        gate_summary(project, set_id)
        review_grid(project, set_id, key="explore_review", page_size=8, shortcuts=False, labels=labels)
        st.page_link("pages/review.py", label="Open in Review", icon=":material/fact_check:")
