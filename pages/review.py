"""Review page: ranked candidates with accept, reject, relabel and flag, the oracle, D_valid and export."""

import datetime as dt

import streamlit as st

from adde_core.ui.acquire_panel import ACTIVE_SET, gate_summary
from adde_core.ui.feedback import run_action
from adde_core.ui.review import review_grid, reviewer_name, show_messages
from adde_core.ui.state import current_project, require_shell
from adde_core.ui.text import md

require_shell("pages/review.py")
project = current_project()
reviewer_name()
st.title("Review")
show_messages()

sets = project.candidate_sets()
if sets.empty:
    st.info("No candidates yet. On **Explore**, pick a sparse region or select points, then retrieve from the pool "
            "or generate.")
    st.page_link("pages/explore.py", label="Go to Explore", icon=":material/scatter_plot:")
    st.stop()


def _label(set_id: int) -> str:
    row = sets.set_index("id").loc[set_id]
    when = row["created_at"].strftime("%Y-%m-%d %H:%M") if isinstance(row["created_at"], dt.datetime) else ""
    return (f"#{set_id} · {row['mode']} · {row['region'].get('region_id', '?')} · {row['n_candidates']} candidates "
            f"· {row['strategy']} · iteration {row['iteration']} · {when}")


ids = list(sets["id"])
active = st.session_state.get(ACTIVE_SET)
set_id = st.selectbox("Candidate set", ids, index=ids.index(active) if active in ids else 0, format_func=_label,
                      key="review_set")
st.session_state[ACTIVE_SET] = set_id
region = sets.set_index("id").loc[set_id, "region"]
if region.get("description"):
    st.caption(md(region["description"]))
gate_summary(project, set_id)

with st.expander("Oracle reviewer (simulation)"):
    st.warning(f"The oracle is a **simulation** for demos and experiments: it decides with the hidden pool labels "
               f"and, for generated items, a reference classifier trained on all real labelled data. Its decisions "
               f"are stored under the reviewer name “{md(project.ORACLE_REVIEWER)}”.")
    if st.button("Let the oracle review the undecided candidates of this set", key="oracle_run"):
        outcome = run_action(project.oracle_review, set_id)
        if outcome is not None:
            done, conflicts = outcome
            accepted = sum(d["action"] in ("accept", "relabel") for d in done)
            st.success(f"Oracle decided {len(done)}: {accepted} accepted or relabelled "
                       f"({accepted / max(len(done), 1):.0%}), {len(done) - accepted} rejected or flagged"
                       + (f"; {len(conflicts)} conflicts" if conflicts else ""))

review_grid(project, set_id, key="review")

st.divider()
valid = project.valid_items()
st.subheader(f"D_valid for iteration {project.current_iteration}: {len(valid)} items")
st.caption("Accepted and relabelled items; they join the dataset at the next iteration.")
if not valid.empty:
    st.dataframe(valid.drop(columns=["flags"]), hide_index=True, height=200)

with st.expander("Export the dataset and the decision log"):
    c1, c2 = st.columns([3, 1])
    folder = c1.text_input("Folder", str(project.root / "exports" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")))
    fmt = c2.selectbox("Format", ["parquet", "csv"])
    if st.button("Export", key="export"):
        summary = run_action(project.export, folder, fmt=fmt)
        if summary is not None:
            st.success(f"Wrote {summary.n_items} items ({md(summary.by_source)}) and {summary.n_images} images to "
                       f"{md(summary.folder)}; manifest {md(summary.manifest.name)}, log {md(summary.decisions.name)}.")
    log = project.decision_log()
    st.download_button("Download the decision log (CSV)", log.to_csv(index=False), "decisions.csv", "text/csv",
                       disabled=log.empty)
