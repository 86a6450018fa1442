"""Diversity page: metric cards for the current dataset, the per-cluster table, subgroup representation."""

import plotly.express as px
import streamlit as st

from adde_core.errors import AddeError
from adde_core.ui.analysis import current_analysis
from adde_core.ui.state import current_project, require_shell
from adde_core.ui.text import md, plotly_text

require_shell("pages/diversity.py")
project = current_project()
st.title("Diversity")
try:
    model_key = project.default_model_key()
except AddeError as exc:
    st.info(f"{md(exc)}.")
    st.stop()
q = st.select_slider("Vendi order q", [0.1, 0.5, 1.0, 2.0, float("inf")], value=2.0,
                     help="q<1 weighs rare kinds of items more; q=∞ looks only at the most common kind.")
result = current_analysis(project, model_key)
summary = project.diversity_summary(result, q=q)
st.caption(f"The dataset D_t is the {summary.n_dataset:,} labelled seed items, measured in {md(model_key)} space "
           "against the validation set and the pool.")

cols = st.columns(4)
for k, metric in enumerate(summary.metrics):
    with cols[k % 4]:
        st.metric(md(metric.label), metric.text, help=md(metric.meaning))
        st.caption(md(metric.meaning))

left, right = st.columns(2)
with left:
    st.subheader("Classes in the dataset")
    if not summary.labels.empty:
        frame = summary.labels.reset_index()
        frame["group"] = frame["group"].map(plotly_text)  # labels become tick text, which Plotly reads as HTML
        st.plotly_chart(px.bar(frame, x="group", y="share", hover_data=["count", "ratio"], height=320)
                        .add_hline(y=float(frame["target_share"].iloc[0]), line_dash="dash",
                                   annotation_text="uniform"), key="labels_bar")
        st.caption("Share of each label among labelled items; the dashed line is a balanced dataset.")
with right:
    st.subheader(f"Subgroup {md(project.subgroup_attribute)} vs uniform")
    if not summary.subgroups.empty:
        st.dataframe(summary.subgroups.style.format({"share": "{:.1%}", "target_share": "{:.1%}",
                                                     "ratio": "{:.2f}"}), width="stretch")
        st.caption("ratio = share / target share: below 1 the subgroup is under-represented.")

st.subheader("Clusters")
st.caption("HDBSCAN clusters over all items (seed, pool, val, ood): size, role mix, label and subgroup mix, "
           "and kNN density. Clusters with many val/pool items but few seed items are where the dataset is thin.")
st.dataframe(result.cluster_table, width="stretch")
