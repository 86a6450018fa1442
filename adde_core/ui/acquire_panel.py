"""Controls that fill a region: pool retrieval or targeted generation, with the ranking strategy and weights."""

from __future__ import annotations

from typing import Any

import streamlit as st

from adde_core.project import Project
from adde_core.ui.feedback import progress_bar, run_action
from adde_core.ui.text import md

ACTIVE_SET = "active_candidate_set"


def ranking_controls(key: str, learned: Any = None) -> tuple[str, Any]:
    """Strategy picker and α, β, γ sliders, starting from the loop's learned weights (with a reset to defaults)."""
    from adde_core.ranking import STRATEGIES, RankingWeights

    default = learned or RankingWeights()
    seen = f"{key}_learned"
    if st.session_state.get(seen) != tuple(default.normalized()):
        # New learned weights (an iteration adapted them): move the sliders to them.
        st.session_state[seen] = tuple(default.normalized())
        for name, value in zip(("alpha", "beta", "gamma"), default.normalized()):
            st.session_state[f"{key}_{name}"] = round(float(value), 2)
    with st.expander("Ranking: strategy and weights"):
        if st.button("Reset to defaults", key=f"{key}_reset", help="α, β, γ as before any learning"):
            for name, value in zip(("alpha", "beta", "gamma"), RankingWeights().normalized()):
                st.session_state[f"{key}_{name}"] = round(float(value), 2)
        names = list(STRATEGIES)
        strategy = st.selectbox("Strategy", names, index=names.index("adde"), key=f"{key}_strategy",
                                help="adde: α·U + β·Div + γ·Q. The others are the usual active-learning baselines.")
        c1, c2, c3 = st.columns(3)
        alpha = c1.slider("α uncertainty", 0.0, 1.0, step=0.01, key=f"{key}_alpha",
                          help="Weight of the current model's uncertainty (margin): labels it learns most from.")
        beta = c2.slider("β diversity", 0.0, 1.0, step=0.01, key=f"{key}_beta",
                         help="Weight of distance to what the dataset already has: fills gaps, avoids redundancy.")
        gamma = c3.slider("γ quality", 0.0, 1.0, step=0.01, key=f"{key}_gamma",
                          help="Weight of predicted quality: 1 for real pool items, the gate score for generated ones.")
        if alpha + beta + gamma == 0:
            st.warning("All weights are 0; using the defaults.")
            return strategy, default
    return strategy, RankingWeights(alpha=alpha, beta=beta, gamma=gamma)


def acquisition_panel(project: Project, region: Any, *, key: str, labels: list[str]) -> int | None:
    """Retrieve or generate candidates for ``region`` (selected ids or a detected region); returns the set to review."""
    from adde_core.acquisition.generation import GENERATORS

    retrieve_tab, generate_tab = st.tabs(["Retrieve from the pool", "Generate"])
    with retrieve_tab:
        c1, c2 = st.columns([1, 2])
        k = c1.number_input("Candidates", 5, 500, 50, 5, key=f"{key}_k")
        c2.caption("Nearest pool items to the region's centre and members, plus uncertain items nearby. "
                   "Exact search in torch (GPU when present); FAISS past 200k items.")
        strategy, weights = ranking_controls(f"{key}_r", project.learned_weights())
        if st.button("Retrieve candidates", key=f"{key}_retrieve", type="primary"):
            with st.spinner("Retrieving and ranking…"):
                result = run_action(project.acquire, region, mode="retrieve", k=int(k), strategy=strategy,
                                    weights=weights)
            if result is not None:
                st.session_state[ACTIVE_SET] = result.set_id
    with generate_tab:
        names = list(GENERATORS)
        c1, c2, c3 = st.columns(3)
        generator = c1.selectbox("Generator", names, key=f"{key}_gen",
                                 help="cvae: built-in conditional VAE trained on your dataset (offline). "
                                      "augment: transforms and mixups of the region's members. "
                                      "diffusers: a local text-to-image pipeline.")
        n = c2.number_input("Images to generate", 4, 256, 48, 4, key=f"{key}_n")
        label = c3.selectbox("Label to generate", ["(region's dominant label)", *labels], key=f"{key}_label")
        params: dict[str, Any] = {}
        prompt = None
        if generator == "diffusers":
            params["model"] = st.text_input("Local pipeline folder (or hub id when online)", key=f"{key}_pipe")
            prompt = st.text_area("Prompt (describes the region; edit freely)", key=f"{key}_prompt",
                                  value=_suggested_prompt(project, region)) or None
        strategy, weights = ranking_controls(f"{key}_g", project.learned_weights())
        if st.button("Generate candidates", key=f"{key}_generate", type="primary"):
            result = run_action(project.acquire, region, mode="generate", generator=generator, n=int(n),
                                label=None if label.startswith("(") else label, prompt=prompt,
                                generator_params=params or None, strategy=strategy, weights=weights,
                                progress=progress_bar("Training the generator on the dataset"))
            if result is not None:
                st.session_state[ACTIVE_SET] = result.set_id
    return st.session_state.get(ACTIVE_SET)


def _suggested_prompt(project: Project, region: Any) -> str:
    try:
        return project.suggest_prompt(region)
    except Exception:  # noqa: BLE001 - a prompt suggestion must never break the panel; the user can type one
        return ""


def gate_summary(project: Project, set_id: int) -> None:
    """For a generated set: how many images the quality gate kept, why the others went, and their images."""
    info = project.candidate_set(set_id)
    summary = info["summary"]
    if info["mode"] != "generate":
        return
    n, kept = summary.get("n_generated", 0), summary.get("n_kept", 0)
    reasons = {k: v for k, v in summary.get("gate", {}).items() if k != "kept" and v}
    st.markdown(f"**Quality gate:** kept {kept} of {n} generated ({kept / max(n, 1):.0%})"
                + (" · dropped: " + ", ".join(f"{md(k.replace('_', ' '))} {v}" for k, v in reasons.items())
                   if reasons else ""))
    if summary.get("prompt"):
        st.caption(f"Prompt: {md(summary['prompt'])}")
    dropped = summary.get("dropped", [])
    if dropped:
        with st.expander(f"Dropped images ({len(dropped)})"):
            st.image([str(project.resolve_uri(d["uri"])) for d in dropped[:48]], width=56,
                     caption=[md(d["reason"].replace("_", " ")) for d in dropped[:48]])
