"""Review claims on SQLite and PostgreSQL: reviewers get different items, fair shares, release on decision or timeout."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from adde_core.review import DecisionRequest, decision_log, record_decision
from adde_core.store.candidates import save_candidate_set
from adde_core.store.claims import claim_items, claims_frame, release_claims
from adde_core.store.models import utcnow
from tests.backends import make_synthetic_project, run_together


@pytest.fixture
def project(tmp_path, database_url):
    p = make_synthetic_project(tmp_path / "p", database_url=database_url, n_per=12, n_seed=2, n_val=2)
    yield p
    p.close()


def _set(project, n: int, start: int = 0) -> tuple[int, list[str]]:
    ids = list(project.items(roles=["pool"])["id"][start:start + n])
    ranked = pd.DataFrame({"id": ids, "rank": range(1, n + 1), "score": [1.0 - k / n for k in range(n)]})
    set_id = save_candidate_set(project.store, iteration=0, mode="retrieve", region={}, strategy="adde", weights={},
                                params={}, ranked=ranked)
    return set_id, ids


def test_pages_get_different_items_and_share_fairly(project):
    set_id, ids = _set(project, 10)
    a = claim_items(project.store, set_id, "page-a", "ann", want=12)
    assert a.mine == ids and a.n_reviewers == 1  # alone: the whole set, in rank order
    b = claim_items(project.store, set_id, "page-b", "bob", want=12)
    assert b.mine == [] and b.others == {i: "ann" for i in ids} and b.n_reviewers == 2
    a = claim_items(project.store, set_id, "page-a", "ann", want=12)  # ann's next renewal gives back half
    assert a.mine == ids[:5]
    b = claim_items(project.store, set_id, "page-b", "bob", want=12)
    assert b.mine == ids[5:]
    assert set(a.mine).isdisjoint(b.mine)
    live = claims_frame(project.store, set_id).set_index("item_id")
    assert live.loc[ids[0], "reviewer"] == "ann" and live.loc[ids[9], "reviewer"] == "bob"


def test_kept_cards_stay_with_their_page_above_the_fair_share(project):
    set_id, ids = _set(project, 6)
    claim_items(project.store, set_id, "page-a", "ann", want=6)
    claim_items(project.store, set_id, "page-b", "bob", want=6)
    a = claim_items(project.store, set_id, "page-a", "ann", want=6, keep=tuple(ids[:5]))
    assert a.mine == ids[:5]  # the cards ann is looking at are not taken from under her pointer
    assert claim_items(project.store, set_id, "page-b", "bob", want=6).mine == ids[5:]


def test_a_decision_releases_the_claim_and_decided_items_are_never_offered(project):
    set_id, ids = _set(project, 4)
    claim_items(project.store, set_id, "page-a", "ann", want=2)
    record_decision(project.store, DecisionRequest(ids[0], "accept", "ann", label="ant", expected_seq=0))
    assert ids[0] not in set(claims_frame(project.store)["item_id"])
    record_decision(project.store, DecisionRequest(ids[2], "reject", "cat", expected_seq=0))  # unclaimed, decided
    a = claim_items(project.store, set_id, "page-a", "ann", want=3)
    assert a.mine == [ids[1], ids[3]] and a.n_undecided == 2
    # An undo makes the item undecided again, and free for whoever claims next.
    record_decision(project.store, DecisionRequest(ids[0], "undo", "ann", expected_seq=1))
    assert claim_items(project.store, set_id, "page-b", "bob", want=3).mine == [ids[0]]


def test_claims_of_a_page_that_stopped_renewing_lapse(project):
    set_id, ids = _set(project, 4)
    t0 = utcnow()
    claim_items(project.store, set_id, "page-a", "ann", want=4, ttl=30, now=t0)
    assert claim_items(project.store, set_id, "page-b", "bob", want=4, ttl=30, now=t0 + dt.timedelta(seconds=10)
                       ).mine == []
    later = claim_items(project.store, set_id, "page-b", "bob", want=4, ttl=30, now=t0 + dt.timedelta(seconds=31))
    assert later.mine == ids and later.n_reviewers == 1  # ann's page is gone: its presence lapsed too


def test_moving_to_another_set_or_letting_go_releases(project):
    first, ids1 = _set(project, 3)
    second, ids2 = _set(project, 3, start=3)
    claim_items(project.store, first, "page-a", "ann", want=3)
    claim_items(project.store, second, "page-a", "ann", want=3)
    assert set(claims_frame(project.store)["item_id"]) == set(ids2)
    assert claim_items(project.store, first, "page-b", "bob", want=3).mine == ids1
    assert release_claims(project.store, "page-b") == 3
    assert claim_items(project.store, first, "page-c", "cy", want=3).mine == ids1


def test_concurrent_pages_never_hold_the_same_item(project):
    from adde_core.project import Project

    set_id, ids = _set(project, 20)
    pages = [Project.open(project.root) for _ in range(4)]  # four server processes, or four tabs
    try:
        views = run_together(*[lambda p=p, k=k: claim_items(p.store, set_id, f"page-{k}", f"r{k}", want=8)
                               for k, p in enumerate(pages)])
        held = [i for v in views for i in v.mine]
        assert len(held) == len(set(held)), views
        assert len(held) == 20  # arriving together, the first ones take 8 each and the rest what is left
        again = [claim_items(p.store, set_id, f"page-{k}", f"r{k}", want=8) for k, p in enumerate(pages)]
        again = [claim_items(p.store, set_id, f"page-{k}", f"r{k}", want=8) for k, p in enumerate(pages)]
        assert sorted(len(v.mine) for v in again) == [5, 5, 5, 5]  # renewals even the shares out
        held = [i for v in again for i in v.mine]
        assert len(held) == len(set(held)) == 20
    finally:
        for p in pages:
            p.close()


def test_a_repeated_click_stores_one_decision(project):
    from adde_core.review import DecisionConflict

    set_id, (a, b) = _set(project, 2)
    first = record_decision(project.store, DecisionRequest(a, "accept", "ann", label="ant", expected_seq=0))
    again = record_decision(project.store, DecisionRequest(a, "accept", "ann", label="ant", expected_seq=0))
    assert again["repeat"] and again["seq"] == first["seq"] == 1
    with pytest.raises(DecisionConflict):  # someone else, or something else, from the same state: a conflict
        record_decision(project.store, DecisionRequest(a, "accept", "bob", label="ant", expected_seq=0))
    with pytest.raises(DecisionConflict):
        record_decision(project.store, DecisionRequest(a, "accept", "ann", label="bee", expected_seq=0))
    assert len(decision_log(project.store)) == 1
