"""The review grid: ranked candidates with accept, reject, relabel, flag, undo, batch actions and shortcuts.

Every button writes to the store in its ``on_click`` callback, before the rerun draws the
page again, so what the page shows is always what the store holds. Each decision carries
the decision count the reviewer saw (``expected_seq``): if another tab or reviewer
decided in between, the store refuses it and the page says who decided what.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st

from adde_core.errors import AddeError
from adde_core.project import Project
from adde_core.review import (
    ORACLE_REVIEWER,
    DecisionConflict,
    DecisionRequest,
    candidate_set,
    candidates_frame,
    decision_log,
    decision_states,
    record_decision,
)
from adde_core.store.models import REVIEW_FLAGS

_MESSAGES = "_review_messages"
_REVIEWER = "reviewer_name"
_ICONS = {"accept": "✅", "relabel": "✏️", "reject": "❌", "flag": "🚩"}


def reviewer_name() -> str:
    """The name decisions are stored under (sidebar input, remembered for the session)."""
    if _REVIEWER not in st.session_state:
        st.session_state[_REVIEWER] = os.environ.get("ADDE_REVIEWER") or os.environ.get("USER") or "reviewer"
    return st.sidebar.text_input("Reviewer", key=_REVIEWER, help="Stored with every decision you make.")


def _say(kind: str, text: str) -> None:
    st.session_state.setdefault(_MESSAGES, []).append((kind, text))


def show_messages() -> None:
    """Show (once) what the last callbacks reported: saved, conflicts, errors."""
    for kind, text in st.session_state.pop(_MESSAGES, []):
        (st.warning if kind == "warning" else st.error if kind == "error" else st.toast)(text)


def _decide(project: Project, request: DecisionRequest) -> None:
    try:
        record_decision(project.store, request)
    except DecisionConflict as exc:
        _say("warning", str(exc))
    except AddeError as exc:
        _say("error", str(exc))


def _decide_many(project: Project, requests: list[DecisionRequest]) -> None:
    saved = 0
    for request in requests:
        try:
            record_decision(project.store, request)
            saved += 1
        except DecisionConflict as exc:
            _say("warning", str(exc))
    _say("toast", f"Saved {saved} decision(s)")


def _undo_last(project: Project, reviewer: str, item_ids: list[str]) -> None:
    log = decision_log(project.store)
    mine = log[(log["reviewer"] == reviewer) & log["item_id"].isin(item_ids) & (log["action"] != "undo")]
    states = decision_states(project.store, item_ids).set_index("item_id")
    for row in mine.iloc[::-1].itertuples():
        state = states.loc[row.item_id]
        if state["seq"] == row.seq:  # still standing: undo it
            _decide(project, DecisionRequest(row.item_id, "undo", reviewer, expected_seq=int(state["n_decisions"])))
            _say("toast", f"Undid {row.action} on {row.item_id}")
            return
    _say("warning", "Nothing of yours to undo in this set.")


def _score_text(row: pd.Series) -> str:
    parts = [f"{row[c]:.2f}" for c in ("alpha_U", "beta_Div", "gamma_Q") if c in row and pd.notna(row[c])]
    if len(parts) == 3:
        return f"score {row['score']:.2f} = α·U {parts[0]} + β·Div {parts[1]} + γ·Q {parts[2]}"
    return f"score {row['score']:.2f}"


def _state_text(state: pd.Series | None) -> str:
    if state is None or not isinstance(state.get("action"), str):
        return "undecided"
    text = f"{_ICONS.get(state['action'], '')} {state['action']}"
    if state["action"] in ("accept", "relabel") and state.get("label"):
        text += f" as **{state['label']}**"
    flags = state.get("flags") or []
    if flags:
        text += f" · flags: {', '.join(flags)}"
    simulated = " (simulated)" if state["reviewer"] == ORACLE_REVIEWER else ""
    return f"{text} · by {state['reviewer']}{simulated}"


def review_grid(project: Project, set_id: int, *, key: str, page_size: int = 12, columns: int = 4,
                labels: list[str] | None = None, shortcuts: bool = True) -> pd.DataFrame:
    """Show one candidate set for review; returns its candidates with their current decisions.

    Parameters
    ----------
    project
    set_id
        The stored candidate set.
    key
        Prefix for widget keys (the Explore panel and the Review page use different ones).
    page_size, columns
        Cards per page and per row.
    labels
        Choices for relabelling (default: the labels of the dataset and val).
    shortcuts
        Give the focus card keyboard shortcuts (a = accept, x = reject, u = undo; r and c belong to Streamlit).
        Only one grid per page may use them.
    """
    reviewer = st.session_state.get(_REVIEWER) or "reviewer"
    info = candidate_set(project.store, set_id)
    cands = candidates_frame(project.store, set_id)
    if cands.empty:
        st.info("This candidate set is empty: nothing passed retrieval or the quality gate.")
        return cands
    states = decision_states(project.store, list(cands["item_id"])).set_index("item_id")
    items = project.items().set_index("id")
    cands = cands.join(items[["path", "source"]], on="item_id")
    cands["decision"] = states["action"].reindex(cands["item_id"]).to_numpy()
    cands["seen_seq"] = states["n_decisions"].reindex(cands["item_id"]).fillna(0).astype(int).to_numpy()
    labels = labels or sorted(project.store.labels("seed") | project.store.labels("val"))
    nearest = info["summary"].get("nearest", {})
    paths = items["path"]

    show = st.segmented_control("Show", ["undecided", "all", "decided"], default="undecided", key=f"{key}_show")
    view = cands if show == "all" else cands[cands["decision"].isna() == (show != "decided")]
    n_pages = max(1, -(-len(view) // page_size))
    page = int(st.select_slider("Page", list(range(1, n_pages + 1)), key=f"{key}_page")) if n_pages > 1 else 1
    shown = view.iloc[(page - 1) * page_size: page * page_size]
    done = int(cands["decision"].notna().sum())
    st.progress(done / len(cands), text=f"{done}/{len(cands)} decided · showing {len(shown)} ({show})")

    def request(row: Any, action: str, label: str | None = None, flags: tuple[str, ...] = (),
                critique: str | None = None) -> DecisionRequest:
        return DecisionRequest(row.item_id, action, reviewer, label=label, flags=flags, critique=critique,
                               expected_seq=int(row.seen_seq), candidate_set_id=set_id,
                               score={"score": float(row.score), **{c: float(getattr(row, c)) for c in
                                                                    ("U", "Div", "Q") if hasattr(row, c)}})

    undecided = [r for r in shown.itertuples() if pd.isna(r.decision)]
    b1, b2 = st.columns(2)
    b1.button(f"Accept all {len(undecided)} shown undecided", key=f"{key}_accept_all", disabled=not undecided,
              on_click=_decide_many, args=(project, [request(r, "accept", r.suggested_label) for r in undecided]),
              help="Accept each with its suggested label; each decision is saved on its own.")
    b2.button("Undo my last decision", key=f"{key}_undo", on_click=_undo_last,
              args=(project, reviewer, list(cands["item_id"])), shortcut="u" if shortcuts else None)

    if shortcuts and undecided:
        focus = undecided[0]
        with st.container(border=True):
            pic, body = st.columns([1, 5])
            if isinstance(focus.path, str):
                pic.image(focus.path, width=112)
            body.markdown(f"**Next up** · #{focus.rank} `{focus.item_id}` · suggested **{focus.suggested_label}** "
                          "· keys: **a** accept, **x** reject, **u** undo")
            body.caption(_score_text(pd.Series(focus._asdict())))
            f1, f2, _ = body.columns([1, 1, 3])
            f1.button("Accept", key=f"{key}_focus_accept", shortcut="a", type="primary",
                      on_click=_decide, args=(project, request(focus, "accept", focus.suggested_label)))
            f2.button("Reject", key=f"{key}_focus_reject", shortcut="x",
                      on_click=_decide, args=(project, request(focus, "reject")))

    cols = st.columns(columns)
    for k, row in enumerate(shown.itertuples()):
        with cols[k % columns].container(border=True, key=f"{key}_card_{row.item_id}"):
            if isinstance(row.path, str):
                st.image(row.path, width=120)
            tag = "synthetic" if row.source == "synthetic" else "pool"
            st.markdown(f"**#{row.rank}** `{row.item_id}` · {tag}  \nsuggested **{row.suggested_label}**")
            st.caption(_score_text(pd.Series(row._asdict())))
            near = [paths.get(i) for i in nearest.get(row.item_id, [])]
            near = [p for p in near if isinstance(p, str)]
            if near:
                st.image(near, width=36, caption=["near"] * len(near))
            state = states.loc[row.item_id] if row.item_id in states.index else None
            st.markdown(_state_text(state), help=None)
            a, r = st.columns(2)
            a.button("Accept", key=f"{key}_acc_{row.item_id}", use_container_width=True,
                     on_click=_decide, args=(project, request(row, "accept", row.suggested_label)))
            r.button("Reject", key=f"{key}_rej_{row.item_id}", use_container_width=True,
                     on_click=_decide, args=(project, request(row, "reject")))
            with st.popover("Relabel / flag", use_container_width=True):
                st.selectbox("Label", labels, key=f"{key}_lab_{row.item_id}",
                                   index=labels.index(row.suggested_label) if row.suggested_label in labels else 0)
                st.multiselect("Flags", REVIEW_FLAGS, key=f"{key}_flags_{row.item_id}")
                st.text_input("Critique (optional)", key=f"{key}_crit_{row.item_id}")
                c1, c2 = st.columns(2)
                c1.button("Relabel", key=f"{key}_rel_{row.item_id}", on_click=_decide_from_widgets,
                          args=(project, request, row, "relabel", key))
                c2.button("Flag only", key=f"{key}_flag_{row.item_id}", on_click=_decide_from_widgets,
                          args=(project, request, row, "flag", key), help="Keep it out of the dataset, marked.")
    return cands


def _decide_from_widgets(project: Project, request: Any, row: Any, action: str, key: str) -> None:
    # The popover's widgets are read in the callback, where their latest values are in session state.
    label = st.session_state.get(f"{key}_lab_{row.item_id}")
    flags = tuple(st.session_state.get(f"{key}_flags_{row.item_id}") or ())
    critique = st.session_state.get(f"{key}_crit_{row.item_id}") or None
    if action == "flag" and not flags:
        _say("warning", f"{row.item_id}: choose at least one flag")
        return
    _decide(project, request(row, action, label if action == "relabel" else None, flags, critique))
