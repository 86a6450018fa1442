"""The oracle reviewer: a simulated human for demos and the headless simulation, using hidden labels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.store.decisions import DecisionRequest

if TYPE_CHECKING:
    from adde_core.working_set import WorkingSet
    from adde_core.model import LinearHead

#: The reviewer name every oracle decision carries, so the audit log and the UI mark it as simulated.
ORACLE_REVIEWER = "oracle (simulated)"


class OracleReviewer:
    """Decide on candidates the way a careful annotator with the true labels would.

    The same rules serve oracle stepping in the app and every simulation (documented in the README):

    * **Pool items** (real data) have a true label in ``truth``. The oracle accepts when the
      suggested label is that label and relabels to it otherwise. A pool item without a true
      label cannot be judged and raises an error, so a simulation never silently runs on
      unlabelled data.
    * **Synthetic items** have no true label. The oracle asks a *reference classifier*, a head
      trained on every real labelled item (seed, val and OOD labels plus the pool's hidden
      labels), in the same embedding space. With ``p`` its class probabilities:

      - accept when its top class is the intended label and ``p[intended] >= accept_confidence``;
      - relabel to its top class when that differs and ``p[top] >= relabel_confidence``;
      - otherwise reject, flagged ``ambiguous`` (it looks like no class confidently).

    Parameters
    ----------
    truth : mapping of str to str
        True label of every real item the oracle may be asked about.
    reference : callable returning LinearHead
        Builds (once, on first need) the reference classifier for synthetic items.
    accept_confidence, relabel_confidence : float
    """

    def __init__(self, truth: Mapping[str, str], reference: Callable[[], "LinearHead"], *,
                 accept_confidence: float = 0.5, relabel_confidence: float = 0.8) -> None:
        self.truth = {str(k): str(v) for k, v in truth.items()}
        self._make_reference = reference
        self._reference: LinearHead | None = None
        self.accept_confidence = accept_confidence
        self.relabel_confidence = relabel_confidence

    @property
    def reference(self) -> "LinearHead":
        """The reference classifier for synthetic items, fitted on first use."""
        if self._reference is None:
            self._reference = self._make_reference()
        return self._reference

    def decide(self, candidates: pd.DataFrame, ws: "WorkingSet", *, candidate_set_id: int | None = None
               ) -> list[DecisionRequest]:
        """Decisions for candidates with ``item_id`` and ``suggested_label`` columns (plus ``score`` if present)."""
        ids = [str(i) for i in candidates["item_id"]]
        rows = ws.rows(ids)
        if len(rows) != len(ids):
            missing = [i for i in ids if i not in ws.index][:3]
            raise AddeError(f"items {missing} have no embedding under {ws.model_key!r}; embed the project first")
        synthetic = ws.source[rows] == "synthetic"
        verdicts = self._judge_synthetic(ws, rows[synthetic],
                                         candidates["suggested_label"].to_numpy()[synthetic]) if synthetic.any() else []
        verdict = iter(verdicts)
        requests = []
        for row, is_synthetic in zip(candidates.to_dict("records"), synthetic):
            item_id, suggested = str(row["item_id"]), row.get("suggested_label")
            score = {k: float(row[k]) for k in ("score", "U", "Div", "Q") if k in row and pd.notna(row[k])}
            if is_synthetic:
                action, label, flags = next(verdict)
            else:
                if item_id not in self.truth:
                    raise AddeError(f"{item_id}: the oracle needs a hidden label for pool items and this one has "
                                    "none; review it by hand or ingest the pool with an oracle_label column")
                truth = self.truth[item_id]
                action, label, flags = ("accept", truth, ()) if truth == suggested else ("relabel", truth, ())
            requests.append(DecisionRequest(item_id=item_id, action=action, reviewer=ORACLE_REVIEWER, label=label,
                                            flags=flags, candidate_set_id=candidate_set_id, score=score))
        return requests

    def _judge_synthetic(self, ws: "WorkingSet", rows: np.ndarray, intended: np.ndarray
                         ) -> list[tuple[str, str | None, tuple[str, ...]]]:
        probs = self.reference.predict_proba(ws.X[rows])
        classes = list(self.reference.classes_)
        out = []
        for p, want in zip(probs, intended):
            top = int(np.argmax(p))
            p_want = float(p[classes.index(want)]) if want in classes else 0.0
            if classes[top] == want and p_want >= self.accept_confidence:
                out.append(("accept", str(want), ()))
            elif classes[top] != want and p[top] >= self.relabel_confidence:
                out.append(("relabel", str(classes[top]), ()))
            else:
                out.append(("reject", None, ("ambiguous",)))
        return out


def reference_head(ws: "WorkingSet", truth: Mapping[str, str]) -> "LinearHead":
    """The oracle's judge of generated items: a head on every real item whose true label is known."""
    from adde_core.model.head import fit_head

    rows = ws.rows([i for i in truth])
    rows = rows[ws.source[rows] != "synthetic"]
    return fit_head(ws.X[rows], np.asarray([truth[str(i)] for i in ws.ids[rows]]), random_state=0)
