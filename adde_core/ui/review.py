"""The review grid: ranked candidates with accept, reject, relabel, flag, batch actions, undo and shortcuts.

The grid is a fragment: a decision redraws only the grid, never the map or the page around
it, and the grid refreshes itself every few seconds so others' decisions appear without a
reload. Every button writes to the store in its ``on_click`` callback and carries the item
id and the decision count its card showed (``expected_seq``), in its key as well as its
arguments: a click can only act on the card the person saw, or gets a conflict that says
who decided what. A repeated click (a double-click) is stored once.

Each page claims a batch of undecided candidates for a short time (a lease renewed while the
page is open), so several reviewers on one set are offered different items. A batch keeps
its cards in place once decided (showing the result, buttons disabled): a second click lands
on the card it was aimed at, never on the next item sliding under the pointer.
"""

from __future__ import annotations

import os
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pandas as pd
import streamlit as st

from adde_core.errors import AddeError
from adde_core.project import Project
from adde_core.review import ORACLE_REVIEWER, DecisionRequest
from adde_core.store.models import REVIEW_FLAGS
from adde_core.ui.text import md

_MESSAGES = "_review_messages"
_REVIEWER = "reviewer_name"
_HOLDER = "_review_holder"
_UNDO = "_review_undo_stack"
_ICONS = {"accept": "✅", "relabel": "✏️", "reject": "❌", "flag": "🚩"}
#: Seconds between the grid's own refreshes (others' decisions and released claims show up this fast).
REFRESH_SECONDS = 5.0
#: A finished batch stays on screen this long before the next one takes its place, so a quick second
#: click on its last card cannot land on a new card drawn where it was.
ROLLOVER_SECONDS = 1.0
#: How often a page renews its claims (they lapse after 30 s without renewal: see adde_core.store.claims).
RENEW_SECONDS = 10.0


def reviewer_name() -> str:
    """The name decisions are stored under (sidebar input, remembered for the session)."""
    if _REVIEWER not in st.session_state:
        st.session_state[_REVIEWER] = os.environ.get("ADDE_REVIEWER") or os.environ.get("USER") or "reviewer"
    return st.sidebar.text_input("Reviewer", key=_REVIEWER, help="Stored with every decision you make.")


def _holder() -> str:
    """This browser session's id: what its claims are held under."""
    if _HOLDER not in st.session_state:
        st.session_state[_HOLDER] = uuid.uuid4().hex
    return st.session_state[_HOLDER]


def _say(kind: str, text: str) -> None:
    st.session_state.setdefault(_MESSAGES, []).append((kind, text))


def show_messages() -> None:
    """Show (once) what the last callbacks reported: saved, conflicts, errors (as text: they quote labels and ids)."""
    for kind, text in st.session_state.pop(_MESSAGES, []):
        (st.warning if kind == "warning" else st.error if kind == "error" else st.toast)(md(text))


# ------------------------------------------------------------------ callbacks
def _record(project: Project, requests: list[DecisionRequest], slots_key: str | None = None) -> list[dict[str, Any]]:
    """Store ``requests``, remember them for undo, report conflicts; returns the newly stored decisions."""
    try:
        done, conflicts = project.record_decisions(requests)
    except AddeError as exc:
        _say("error", str(exc))
        return []
    fresh = [d for d in done if not d.get("repeat")]
    if fresh:
        st.session_state.setdefault(_UNDO, []).append([(d["item_id"], int(d["seq"])) for d in fresh])
    for exc in conflicts:
        _say("warning", str(exc))
    if slots_key and slots_key in st.session_state:
        st.session_state[slots_key]["last"] = time.monotonic()
    return fresh


def _decide(project: Project, request: DecisionRequest, slots_key: str | None) -> None:
    _record(project, [request], slots_key)


def _set_selection(key: str, item_ids: list[str], value: bool) -> None:
    for item in item_ids:
        st.session_state[f"{key}_sel_{item}"] = value


def _decide_selected(project: Project, shown: dict[str, DecisionRequest], key: str, action: str,
                     slots_key: str | None) -> None:
    """One action on every selected card: accept (suggested labels), relabel to one label, reject or flag.

    The flags and critique of the batch controls go with the decisions; the controls are read
    here, in the callback, where their latest values are in session state.
    """
    chosen = [item for item in shown if st.session_state.get(f"{key}_sel_{item}")]
    if not chosen:
        _say("warning", "Select some cards first (or press “Select all shown”).")
        return
    label = st.session_state.get(f"{key}_batch_label")
    flags = tuple(st.session_state.get(f"{key}_batch_flags") or ())
    critique = st.session_state.get(f"{key}_batch_crit") or None
    if action == "relabel" and not label:
        _say("warning", "Choose the label for the selected cards first.")
        return
    if action == "flag" and not flags:
        _say("warning", "Choose at least one flag for the selected cards first.")
        return
    try:
        requests = [DecisionRequest(r.item_id, action, r.reviewer,
                                    label=label if action == "relabel" else r.label if action == "accept" else None,
                                    flags=flags, critique=critique, expected_seq=r.expected_seq,
                                    candidate_set_id=r.candidate_set_id, score=r.score)
                    for r in (shown[i] for i in chosen)]
    except AddeError as exc:
        _say("error", str(exc))
        return
    fresh = _record(project, requests, slots_key)
    _set_selection(key, chosen, False)
    verb = {"relabel": f"Relabelled {len(fresh)} as {label}", "accept": f"Accepted {len(fresh)}",
            "reject": f"Rejected {len(fresh)}", "flag": f"Flagged {len(fresh)}"}[action]
    _say("toast", verb + (" (one undo withdraws them all)" if len(fresh) > 1 else ""))


def _undo(project: Project, reviewer: str, item_ids: list[str], slots_key: str | None) -> None:
    """Withdraw this session's last action (one card or a whole batch); without one, my latest decision here."""
    stack = st.session_state.get(_UNDO) or []
    states = project.decision_states(item_ids).set_index("item_id")
    if stack:
        action = stack.pop()
        requests, moved = [], []
        for item, seq in action:
            if item in states.index and int(states.loc[item, "n_decisions"]) == seq:
                requests.append(DecisionRequest(item, "undo", reviewer, expected_seq=seq))
            else:
                moved.append(item)
        done, conflicts = project.record_decisions(requests)
        for exc in conflicts:
            _say("warning", str(exc))
        if moved:
            _say("warning", f"Not undone, decided again since: {', '.join(moved)}")
        _say("toast", f"Undid {len(done)} decision(s)")
    else:
        log = project.decision_log()
        mine = log[(log["reviewer"] == reviewer) & log["item_id"].isin(item_ids) & (log["action"] != "undo")]
        for row in mine.iloc[::-1].itertuples():
            if row.item_id in states.index and states.loc[row.item_id, "seq"] == row.seq:  # still standing
                _, conflicts = project.record_decisions([DecisionRequest(
                    row.item_id, "undo", reviewer, expected_seq=int(states.loc[row.item_id, "n_decisions"]))])
                for exc in conflicts:
                    _say("warning", str(exc))
                if not conflicts:
                    _say("toast", f"Undid {row.action} on {row.item_id}")
                break
        else:
            _say("warning", "Nothing of yours to undo in this set.")
    if slots_key and slots_key in st.session_state:
        st.session_state[slots_key]["last"] = time.monotonic()


def _next_batch(slots_key: str) -> None:
    st.session_state.pop(slots_key, None)


# ------------------------------------------------------------------ drawing
def _score_text(row: dict[str, Any]) -> str:
    parts = [f"{row[c]:.2f}" for c in ("alpha_U", "beta_Div", "gamma_Q") if c in row and pd.notna(row[c])]
    if len(parts) == 3:
        return f"score {row['score']:.2f} = α·U {parts[0]} + β·Div {parts[1]} + γ·Q {parts[2]}"
    return f"score {row['score']:.2f}"


def _state_text(state: pd.Series | None) -> str:
    """The standing decision as plain text (it names a label and a reviewer, so it is shown with ``st.text``)."""
    if state is None or not isinstance(state.get("action"), str):
        return "undecided"
    text = f"{_ICONS.get(state['action'], '')} {state['action']}"
    if state["action"] in ("accept", "relabel") and state.get("label"):
        text += f" as {state['label']}"
    flags = state.get("flags") or []
    if flags:
        text += f" · flags: {', '.join(flags)}"
    simulated = " (simulated)" if state["reviewer"] == ORACLE_REVIEWER else ""
    return f"{text} · by {state['reviewer']}{simulated}"


def _suggestions(project: Project, set_id: int, cards: pd.DataFrame) -> pd.DataFrame:
    """Suggested label and its evidence per card; the stored (head's) label when no head can be fitted."""
    try:
        found = project.suggested_labels(set_id)
    except Exception:  # noqa: BLE001 - a suggestion must never keep a person from reviewing
        found = pd.DataFrame(columns=["suggested_label", "why"])
    out = pd.DataFrame({"suggested_label": cards["suggested_label"].to_numpy(), "why": ""},
                       index=cards["item_id"].to_numpy())
    hit = out.index.intersection(found.index)
    out.loc[hit, ["suggested_label", "why"]] = found.loc[hit, ["suggested_label", "why"]].to_numpy()
    return out


def review_grid(project: Project, set_id: int, *, key: str, page_size: int = 12, columns: int = 4,
                labels: list[str] | None = None, shortcuts: bool = True) -> None:
    """Show one candidate set for review, as a fragment that redraws on its own.

    Parameters
    ----------
    project
    set_id
        The stored candidate set.
    key
        Prefix for widget keys (the Explore panel and the Review page use different ones).
    page_size, columns
        Cards per batch (and per page of the "all" and "decided" views) and per row.
    labels
        Choices for relabelling (default: the labels of the dataset and val).
    shortcuts
        Give the next card keyboard shortcuts (a = accept, x = reject, u = undo; r and c belong to
        Streamlit). Only one grid per page may use them.
    """
    labels = labels or project.labels()
    _grid(project, set_id, key, page_size, columns, labels, shortcuts)


@st.fragment(run_every=REFRESH_SECONDS)
def _grid(project: Project, set_id: int, key: str, page_size: int, columns: int, labels: list[str],
          shortcuts: bool) -> None:
    reviewer = st.session_state.get(_REVIEWER) or "reviewer"
    holder = _holder()
    show_messages()
    cards = project.review_cards(set_id)
    if cards.empty:
        st.info("This candidate set is empty: nothing passed retrieval or the quality gate.")
        return
    ids = list(cards["item_id"])
    states = project.decision_states(ids).set_index("item_id")
    cards["decision"] = states["action"].reindex(cards["item_id"]).to_numpy()
    cards["seen_seq"] = states["n_decisions"].reindex(cards["item_id"]).fillna(0).astype(int).to_numpy()
    suggest = _suggestions(project, set_id, cards)
    cards["suggested"] = suggest["suggested_label"].reindex(cards["item_id"]).to_numpy()
    cards["why"] = suggest["why"].reindex(cards["item_id"]).to_numpy()
    cards = cards.set_index("item_id", drop=False)

    show = st.segmented_control("Show", ["undecided", "all", "decided"], default="undecided", key=f"{key}_show",
                                help="undecided: your batch, claimed for you so other reviewers get other items")
    slots_key = f"{key}_slots"
    done = int(cards["decision"].notna().sum())
    if show == "undecided":
        shown, others, note = _batch(project, cards, set_id, holder, reviewer, slots_key, page_size)
    else:
        view = cards[cards["decision"].notna()] if show == "decided" else cards
        n_pages = max(1, -(-len(view) // page_size))
        page = int(st.select_slider("Page", list(range(1, n_pages + 1)), key=f"{key}_page")) if n_pages > 1 else 1
        shown, others, note = list(view["item_id"][(page - 1) * page_size: page * page_size]), {}, ""
    st.progress(done / len(cards), text=f"{done}/{len(cards)} decided · showing {len(shown)} ({show}){note}")

    def request(row: Any, action: str, label: str | None = None) -> DecisionRequest:
        label = label if isinstance(label, str) else None
        return DecisionRequest(row.item_id, action, reviewer, label=label, expected_seq=int(row.seen_seq),
                               candidate_set_id=set_id,
                               score={"score": float(row.score), **{c: float(getattr(row, c)) for c in
                                                                    ("U", "Div", "Q") if hasattr(row, c)}})

    # Plain records, not Series: a column named "rank" must not read as Series.rank.
    rows = [SimpleNamespace(**cards.loc[i].to_dict()) for i in shown]
    batch_view = show == "undecided"
    # Selectable: in your batch the undecided cards you hold; in "all" and "decided" any card no one else holds.
    pickable = [r for r in rows if r.item_id not in others and (not batch_view or pd.isna(r.decision))]
    batch = {r.item_id: request(r, "accept", r.suggested) for r in pickable}
    open_rows = [r for r in pickable if pd.isna(r.decision)]
    focus = open_rows[0].item_id if shortcuts and batch_view and open_rows else None
    selected = [i for i in batch if st.session_state.get(f"{key}_sel_{i}")]
    slots = slots_key if batch_view else None
    _batch_bar(project, key, batch, selected, labels, reviewer, ids, slots, shortcuts)

    cols = st.columns(columns)
    for k, row in enumerate(rows):
        with cols[k % columns].container(border=True, key=f"{key}_card_{row.item_id}"):
            _card(project, row, states, key=key, request=request, slots=slots, other=others.get(row.item_id),
                  focus=row.item_id == focus, batch_view=batch_view, pickable=row.item_id in batch)


def _batch_bar(project: Project, key: str, batch: dict[str, DecisionRequest], selected: list[str], labels: list[str],
               reviewer: str, ids: list[str], slots: str | None, shortcuts: bool) -> None:
    """Select all / clear, one label for the selected, accept / relabel / reject / flag them in one action, undo."""
    n = len(selected)
    bar = st.columns([1.1, 0.8, 1.4, 1.3, 1.3, 1.3], vertical_alignment="bottom")
    bar[0].button("Select all shown", key=f"{key}_select_all", on_click=_set_selection,
                  args=(key, list(batch), True), disabled=not batch)
    bar[1].button("Clear", key=f"{key}_select_none", on_click=_set_selection, args=(key, list(batch), False),
                  disabled=not selected)
    bar[2].selectbox("Label for the selected", labels, index=None, key=f"{key}_batch_label", placeholder="label…")
    bar[3].button(f"Relabel {n} selected", key=f"{key}_relabel_selected", disabled=not selected,
                  on_click=_decide_selected, args=(project, batch, key, "relabel", slots),
                  help="Every selected card gets the chosen label, in one action; one undo withdraws them all.")
    bar[4].button(f"Accept {n} selected", key=f"{key}_accept_selected", disabled=not selected,
                  on_click=_decide_selected, args=(project, batch, key, "accept", slots),
                  help="Accept each selected card with its suggested label.")
    bar[5].button("Undo last action", key=f"{key}_undo", on_click=_undo,
                  args=(project, reviewer, ids, slots), shortcut="u" if shortcuts else None,
                  help="Withdraws your last action here: one card, or a whole batch.")
    with st.expander(f"Reject or flag the selected, with a critique ({n} selected)"):
        c1, c2 = st.columns([1, 2])
        c1.multiselect("Flags", REVIEW_FLAGS, key=f"{key}_batch_flags",
                       help="Kept with whichever action you take next on the selected cards.")
        c2.text_input("Critique (optional)", key=f"{key}_batch_crit",
                      help="Kept with whichever action you take next on the selected cards.")
        c3, c4, _ = st.columns([1, 1, 2])
        c3.button(f"Reject {n} selected", key=f"{key}_reject_selected", disabled=not selected,
                  on_click=_decide_selected, args=(project, batch, key, "reject", slots))
        c4.button(f"Flag {n} selected", key=f"{key}_flag_selected", disabled=not selected,
                  on_click=_decide_selected, args=(project, batch, key, "flag", slots),
                  help="Keep them out of the dataset, marked with the flags.")


def _batch(project: Project, cards: pd.DataFrame, set_id: int, holder: str, reviewer: str, slots_key: str,
           page_size: int) -> tuple[list[str], dict[str, str], str]:
    """This page's batch: the cards it holds, in place; topped up with claimed items, renewed on every draw.

    Returns the item ids to show, the items among them now held by someone else (with the
    reviewer's name), and a note for the progress line.
    """
    slots = st.session_state.get(slots_key)
    if not slots or slots.get("set_id") != set_id:
        slots = {"set_id": set_id, "ids": [], "last": 0.0}
    placed = [i for i in slots["ids"] if i in cards.index]
    pending = [i for i in placed if pd.isna(cards.loc[i, "decision"])]
    if placed and not pending and time.monotonic() - slots["last"] >= ROLLOVER_SECONDS:
        placed = []  # the batch is finished and was seen finished: draw the next one
    room = page_size - (len(placed) - len(pending))
    now = time.monotonic()
    age = now - slots.get("claimed", -1e9)
    view = slots.get("view")
    # A click needs no new claims (its card stays in place), so the write is left to the grid's own
    # refresh: claims are renewed every RENEW_SECONDS, and empty slots are topped up once a refresh.
    if (view is None or not placed or age >= RENEW_SECONDS
            or (len(placed) < page_size and age >= REFRESH_SECONDS * 0.8)):
        view = project.claim_review_items(set_id, holder, reviewer, want=max(room, 0), keep=tuple(pending))
        slots["view"], slots["claimed"] = view, now
    mine = set(view.mine)
    placed += [i for i in view.mine if i not in placed][:max(page_size - len(placed), 0)]
    slots["ids"] = placed
    st.session_state[slots_key] = slots
    others = {i: view.others.get(i, "another reviewer") for i in placed
              if i not in mine and pd.isna(cards.loc[i, "decision"])}
    note = ""
    held = len(view.others)
    if view.n_reviewers > 1 or held:
        note = f" · {view.n_reviewers} reviewers on this set, {held} undecided held by others"
    if placed and not [i for i in placed if i in mine]:
        st.button("Next batch", key=f"{slots_key}_next", on_click=_next_batch, args=(slots_key,), type="primary")
    if not placed:
        if view.n_undecided:
            st.info(f"The {view.n_undecided} undecided candidates are being reviewed by "
                    f"{md(', '.join(sorted(set(view.others.values()))))}; any they release appear here.")
        else:
            st.success("Every candidate of this set is decided.")
    return placed, others, note


def _card(project: Project, row: SimpleNamespace, states: pd.DataFrame, *, key: str, request: Any,
          slots: str | None, other: str | None, focus: bool, batch_view: bool, pickable: bool) -> None:
    """One card, in few elements: the grid redraws them all after every click, so each one costs latency."""
    item, seq = row.item_id, int(row.seen_seq)
    decided = isinstance(row.decision, str)
    if isinstance(row.path, str):
        st.image(row.path, width=120)
    tag = "synthetic" if row.source == "synthetic" else "pool"
    suggested = row.suggested if isinstance(row.suggested, str) else "—"
    st.text(f"#{row.rank} {item} · {tag}\nsuggested: {suggested}")
    st.caption("  \n".join(x for x in (md(row.why), _score_text(vars(row))) if x))
    if row.near_paths:
        st.image(list(row.near_paths), width=36, caption=["near"] * len(row.near_paths))
    state = states.loc[item] if item in states.index else None
    st.text(_state_text(state) + (f"\nbeing reviewed by {other}" if other else ""))
    if focus:
        st.caption("**Next up** · keys: **a** accept, **x** reject, **u** undo")
    if pickable:
        st.checkbox("Select", key=f"{key}_sel_{item}")
    # In the batch view a decided card keeps its place with its buttons off, so a second click is harmless;
    # elsewhere only the action already standing is off (deciding it again would store a duplicate).
    off = decided or other is not None
    standing = row.decision if decided else None
    a, r = st.columns(2)
    a.button("Accept", key=f"{key}_acc_{item}_{seq}", width="stretch", type="primary" if focus else "secondary",
             disabled=off if batch_view else standing == "accept", shortcut="a" if focus else None,
             on_click=_decide, args=(project, request(row, "accept", row.suggested), slots))
    r.button("Reject", key=f"{key}_rej_{item}_{seq}", width="stretch",
             disabled=off if batch_view else standing == "reject", shortcut="x" if focus else None,
             on_click=_decide, args=(project, request(row, "reject"), slots))
