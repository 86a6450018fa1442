"""Review claims: short leases that share a candidate set among the reviewers looking at it.

Each reviewing page (a *holder*: one browser session) renews a heartbeat and a few claims on
undecided candidates; other pages are offered other items. Claims only steer what is offered:
the decision's ``expected_seq`` is what keeps a click on the item its card showed. A claim
ends when anyone decides its item (see :func:`~adde_core.store.decisions.record_decision`),
when its holder moves to another set or lets go, or when its page stops renewing it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from adde_core.errors import AddeError
from adde_core.store.database import Store, as_utc
from adde_core.store.decisions import standing_decisions
from adde_core.store.models import Candidate, CandidateSet, Item, ReviewClaim, ReviewSession, utcnow

__all__ = ["CLAIM_SECONDS", "ClaimView", "claim_items", "claims_frame", "item_uris", "release_claims", "review_cards"]

#: How long a claim (and a page's presence) lives without renewal. A page renews on every redraw and
#: its grid refreshes every few seconds, so only a closed or disconnected page lets its claims lapse.
CLAIM_SECONDS = 30.0


@dataclass(frozen=True)
class ClaimView:
    """What one holder may offer now, from one consistent read of the store.

    Attributes
    ----------
    mine : list of str
        Undecided items this holder holds, in rank order.
    others : dict of str to str
        Undecided items of the set held by other pages, with the reviewer name of each.
    n_undecided : int
        Undecided candidates in the set (held or not).
    n_reviewers : int
        Pages reviewing this set now, this one included.
    """

    mine: list[str]
    others: dict[str, str] = field(default_factory=dict)
    n_undecided: int = 0
    n_reviewers: int = 1


def _undecided(s: Session, set_id: int) -> list[str]:
    """The set's candidates with no standing decision, in rank order."""
    ids = list(s.scalars(select(Candidate.item_id).where(Candidate.set_id == set_id).order_by(Candidate.rank)))
    states = standing_decisions(s, ids)
    decided = set(states["item_id"][states["action"].notna()])
    return [i for i in ids if i not in decided]


def claim_items(store: Store, set_id: int, holder: str, reviewer: str, *, want: int,
                keep: tuple[str, ...] = (), ttl: float = CLAIM_SECONDS,
                now: dt.datetime | None = None) -> ClaimView:
    """Renew this holder's claims on set ``set_id`` and top them up to its fair share; one locked transaction.

    Parameters
    ----------
    store
    set_id
        The candidate set the page shows. Claims the holder has on other sets are released.
    holder
        The page (browser session) asking; a stable id for its lifetime.
    reviewer
        The person's name, shown to the others ("being reviewed by ...").
    want
        How many undecided items the page has room for. It gets at most its fair share,
        ``ceil(undecided / pages reviewing the set)``, so a page that came first gives back
        its lowest-ranked claims when others arrive, and the newcomers take them on their next renewal.
    keep
        Items to keep holding even above the fair share (the page is showing them already,
        so taking them away would move cards under the person's pointer).
    ttl
        Seconds until an unrenewed claim lapses.
    now
        The current time (tests); defaults to the clock.

    Returns
    -------
    ClaimView
    """
    if want < 0:
        raise AddeError(f"want must be 0 or more, got {want}")
    now = now or utcnow()
    until = now + dt.timedelta(seconds=ttl)
    with store.locked_transaction() as s:
        if s.get(CandidateSet, set_id) is None:
            raise AddeError(f"candidate set {set_id} does not exist in this project")
        s.execute(delete(ReviewClaim).where(ReviewClaim.expires_at <= now))
        s.execute(delete(ReviewSession).where(ReviewSession.expires_at <= now))
        s.execute(delete(ReviewClaim).where(ReviewClaim.holder == holder, ReviewClaim.set_id != set_id))
        if s.get(ReviewSession, holder) is None:
            s.add(ReviewSession(holder=holder, set_id=set_id, reviewer=reviewer, expires_at=until))
        else:
            s.execute(update(ReviewSession).where(ReviewSession.holder == holder)
                      .values(set_id=set_id, reviewer=reviewer, expires_at=until))
        s.flush()
        undecided = _undecided(s, set_id)
        claims = {c.item_id: c for c in s.scalars(select(ReviewClaim).where(ReviewClaim.item_id.in_(undecided)))}
        # Claims on items decided meanwhile (a batch tool, an older ADDE) go: nobody needs to hold them.
        s.execute(delete(ReviewClaim).where(ReviewClaim.set_id == set_id, ReviewClaim.item_id.not_in(undecided)))
        n_pages = int(s.scalar(select(func.count()).select_from(ReviewSession)
                               .where(ReviewSession.set_id == set_id)) or 1)
        fair = math.ceil(len(undecided) / max(n_pages, 1))
        target = min(want, fair)
        mine = [i for i in undecided if i in claims and claims[i].holder == holder]
        kept = [i for i in mine if i in keep]
        rest = [i for i in mine if i not in keep]
        mine = kept + rest[:max(target - len(kept), 0)]
        shed = rest[max(target - len(kept), 0):]
        if shed:
            s.execute(delete(ReviewClaim).where(ReviewClaim.holder == holder, ReviewClaim.item_id.in_(shed)))
        free = [i for i in undecided if i not in claims]
        taken = free[:max(target - len(mine), 0)]
        for item_id in taken:
            s.add(ReviewClaim(item_id=item_id, set_id=set_id, holder=holder, reviewer=reviewer,
                              claimed_at=now, expires_at=until))
        if mine:
            s.execute(update(ReviewClaim).where(ReviewClaim.holder == holder, ReviewClaim.item_id.in_(mine))
                      .values(expires_at=until, reviewer=reviewer))
        s.flush()
        held = set(mine) | set(taken)
        others = {i: c.reviewer for i, c in claims.items() if c.holder != holder and i not in shed}
        return ClaimView([i for i in undecided if i in held], others, len(undecided), n_pages)


def release_claims(store: Store, holder: str, item_ids: list[str] | None = None) -> int:
    """Let go of a holder's claims (all, or ``item_ids``) and, with all, its presence; returns how many went."""
    with store.transaction() as s:
        stmt = delete(ReviewClaim).where(ReviewClaim.holder == holder)
        if item_ids is not None:
            stmt = stmt.where(ReviewClaim.item_id.in_(list(item_ids)))
        n = s.execute(stmt).rowcount or 0
        if item_ids is None:
            s.execute(delete(ReviewSession).where(ReviewSession.holder == holder))
        return int(n)


def claims_frame(store: Store, set_id: int | None = None, *, now: dt.datetime | None = None) -> pd.DataFrame:
    """Live claims (``item_id, set_id, holder, reviewer, claimed_at, expires_at``), of one set or all."""
    now = now or utcnow()
    cols = ["item_id", "set_id", "holder", "reviewer", "claimed_at", "expires_at"]
    stmt = select(*(getattr(ReviewClaim, c) for c in cols)).where(ReviewClaim.expires_at > now)
    if set_id is not None:
        stmt = stmt.where(ReviewClaim.set_id == set_id)
    with store.transaction() as s:
        rows = s.execute(stmt.order_by(ReviewClaim.item_id)).all()
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("claimed_at", "expires_at"):
        frame[c] = [as_utc(v) for v in frame[c]]
    return frame


def review_cards(store: Store, set_id: int) -> pd.DataFrame:
    """The set's candidates in rank order with what a card shows of its item (``uri``, ``source``), in one query.

    The review grid redraws after every click, so it reads only its own rows, never the whole items table.
    """
    with store.transaction() as s:
        rows = s.execute(select(Candidate, Item.uri, Item.source).join(Item, Item.id == Candidate.item_id)
                         .where(Candidate.set_id == set_id).order_by(Candidate.rank)).all()
    frame = pd.DataFrame([{"item_id": c.item_id, "rank": c.rank, "score": c.score, "suggested_label": c.suggested_label,
                           "via": c.via, **c.components, "uri": uri, "source": source} for c, uri, source in rows])
    if frame.empty:
        frame = pd.DataFrame(columns=["item_id", "rank", "score", "suggested_label", "via", "uri", "source"])
    return frame


def item_uris(store: Store, item_ids: list[str]) -> dict[str, str | None]:
    """The stored URI of each of ``item_ids`` (ids not in the project are absent)."""
    if not item_ids:
        return {}
    with store.transaction() as s:
        return dict(s.execute(select(Item.id, Item.uri).where(Item.id.in_(list(item_ids)))).all())
