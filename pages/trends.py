"""Trends page: step the loop (by hand or with the oracle) and watch quality, fairness and diversity evolve."""

from dataclasses import replace

import streamlit as st

from adde_core.errors import AddeError
from adde_core.ui.analysis import current_analysis
from adde_core.ui.feedback import progress_bar, run_action
from adde_core.ui.state import current_project, require_shell
from adde_core.ui.text import md
from adde_core.ui.trends import (MAP_COLOURINGS, curves_csv, evolving_map_figure, iteration_headline,
                                 iteration_sentence, trends_figure)

require_shell("pages/trends.py")
project = current_project()
st.title("Trends")
if project.embedding_sets().empty:
    st.info("No embeddings yet: embed the data on the **Data** page first.")
    st.stop()

t = project.current_iteration
valid = project.valid_items()
headline = st.empty()  # refilled below once a step has moved the loop on
headline.markdown(iteration_headline(t, len(valid)))

with st.expander("Stopping rules"):
    current = project.stopping_config()
    c1, c2, c3, c4 = st.columns(4)
    budget = c1.number_input("Label budget (0 = none)", 0, 1_000_000, current.label_budget or 0, 10)
    target = c2.number_input("Target val accuracy (0 = none)", 0.0, 1.0, current.target_accuracy or 0.0, 0.01)
    plateau = c3.number_input("Plateau over k iterations", 1, 50, current.plateau_iterations or 3)
    max_it = c4.number_input("Max iterations (0 = none)", 0, 1000, current.max_iterations or 0)
    chosen = replace(current, label_budget=budget or None, target_accuracy=target or None,
                     plateau_iterations=plateau, max_iterations=max_it or None)
    if chosen != current:
        project.set_stopping_config(chosen)

c1, c2, c3 = st.columns([2, 2, 3])
if c1.button("Next iteration with my decisions", help="D_{t+1} = D_t ∪ D_valid, retrain, measure, adapt."):
    summary = run_action(project.next_iteration)
    if summary is not None:
        st.success(md(iteration_sentence(summary, project.metrics_history()), keep_lines=True))
with c3.popover("Oracle stepping (simulation)"):
    st.caption("The oracle is a simulation: hidden pool labels, and a reference head for generated items.")
    per_iteration = st.number_input("Labels per iteration", 4, 500, 40, 4)
    generate = st.checkbox("Include generation (cvae)", value=True)
    one = st.button("Run one iteration with the oracle", key="oracle_one")
    until = st.button("Run until a stopping rule fires (at most 10)", key="oracle_until")
if one or until:
    for _ in range(10 if until else 1):
        summary = run_action(project.run_oracle_iteration, budget=int(per_iteration), generate=generate,
                             progress=progress_bar(f"Iteration {project.current_iteration} with the oracle"))
        if summary is None:
            break
        st.success(md(iteration_sentence(summary, project.metrics_history()), keep_lines=True))
        if summary.stop_reason or not until:
            break
with st.expander("Fine-tune the backbone (optional; GPU recommended)"):
    st.caption(md(project.finetune_note()) + " The result is a new embedding set (and a new map), selectable on Explore; "
               "the frozen set stays.")
    epochs = st.number_input("Epochs", 1, 50, 3, key="ft_epochs")
    if st.button("Fine-tune on D_t and re-embed", key="ft_run"):
        result = run_action(project.finetune_backbone, epochs=int(epochs), progress=progress_bar("Fine-tuning"),
                            embed_progress=progress_bar("Re-embedding"))
        if result is not None:
            st.success(f"New embedding set {md(result.model_key)}: {result.n_train} training items, {result.epochs} "
                       f"epochs on {md(result.device)}, train accuracy {result.train_accuracy:.3f}, "
                       f"{result.seconds:.0f} s")
decision = project.check_stop() if project.current_iteration > 0 else None
if decision is not None:
    (st.warning if decision.stop else st.caption)(md(decision.reason))

history = project.metrics_history()
if project.current_iteration != t:
    headline.markdown(iteration_headline(project.current_iteration, len(project.valid_items())))
if "val_accuracy" not in history or history["val_accuracy"].isna().all():
    st.info("No metrics yet: run an iteration (or click **Next iteration**) to record the first numbers.")
    st.stop()
st.plotly_chart(trends_figure(history), key="trends_chart")
st.download_button("Download the curves (CSV)", curves_csv(history), file_name=f"{project.name}-trends.csv",
                   mime="text/csv", key="trends_csv", icon=":material/download:", on_click="ignore",
                   help="One row per iteration, one column per curve; rates as fractions (0.831 = 83.1%).")

st.subheader("The evolving latent map")
try:
    coords = project.map_coordinates()
    if coords is None:  # never mapped yet: compute it here (stored with the project, so once)
        current_analysis(project, project.default_model_key())
        coords = project.map_coordinates()
except AddeError as exc:
    coords = None
    st.info(f"No map yet: {md(exc)}")
if coords is not None:  # no st.stop(): the table below still shows, and app.py still refreshes the sidebar
    items = project.items()[["id", "role", "label", "source", "iteration_added"]]
    m1, m2 = st.columns([3, 1])
    shown = m1.slider("Iteration", 0, max(project.current_iteration, 1), project.current_iteration,
                      key="map_iteration", disabled=project.current_iteration == 0)
    colour_by = m2.radio("Colour by", MAP_COLOURINGS, horizontal=True, key="map_colour_by")
    st.plotly_chart(evolving_map_figure(coords, items, int(shown), colour_by=colour_by), key="evolving_map")

st.subheader("Iterations")
table = history.drop(columns=[c for c in history.columns if "." in c or c == "config"])
table["effects"] = [" · ".join(e) if isinstance(e, list) else "" for e in table["effects"]]
cols = [c for c in ("iteration", "val_accuracy", "fair_worst_group_accuracy", "vendi_q1", "labels_spent",
                    "added_pool", "added_synthetic", "effects", "stop_reason") if c in table]
st.dataframe(table[cols], hide_index=True)
