"""The oracle reviewer: a simulated human for demos and the headless simulation, using hidden labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.review.decisions import DecisionRequest

if TYPE_CHECKING:
    from adde_core.model import LinearHead
    from adde_core.project import Project

#: The reviewer name every oracle decision carries, so the audit log and the UI mark it as simulated.
ORACLE_REVIEWER = "oracle (simulated)"


class OracleReviewer:
    """Decide on candidates the way a careful annotator with the true labels would.

    Rules (documented in the README):

    * **Pool items** (real data) carry a hidden ``oracle_label``. The oracle accepts when
      the suggested label is that label and relabels to it otherwise. A pool item without
      a hidden label cannot be judged and raises an error, so a simulation never
      silently runs on unlabelled data.
    * **Synthetic items** have no true label. The oracle asks a *reference classifier*, a
      :class:`~adde_core.model.LinearHead` trained on every real labelled item of the
      project (seed, val and OOD labels plus the pool's hidden labels), in the same
      embedding space. With ``p`` its class probabilities:

      - accept when its top class is the intended label and ``p[intended] >= accept_confidence``;
      - relabel to its top class when that differs and ``p[top] >= relabel_confidence``;
      - otherwise reject, flagged ``ambiguous`` (it looks like no class confidently).

    Parameters
    ----------
    project : Project
    model_key : str, optional
        Embedding set for the reference classifier (default: the project's default).
    accept_confidence, relabel_confidence : float
    """

    def __init__(self, project: "Project", model_key: str | None = None, *, accept_confidence: float = 0.5,
                 relabel_confidence: float = 0.8) -> None:
        self.project = project
        self.model_key = model_key or project.default_model_key()
        self.accept_confidence = accept_confidence
        self.relabel_confidence = relabel_confidence
        self._reference: LinearHead | None = None
        self._truth = self._true_labels()

    def _true_labels(self) -> pd.Series:
        items = self.project.store.items_frame(include_hidden=True)
        real = items[items["source"] != "synthetic"]
        return real["oracle_label"].fillna(real["label"]).set_axis(real["id"]).dropna()

    @property
    def reference(self) -> "LinearHead":
        """The reference classifier for synthetic items, fitted on first use."""
        if self._reference is None:
            from adde_core.model import LinearHead

            stored = self.project.embeddings(self.model_key)
            rows = pd.Index(stored.ids).get_indexer(self._truth.index)
            ok = rows >= 0
            self._reference = LinearHead().fit(stored.vectors[rows[ok]], self._truth.to_numpy()[ok])
        return self._reference

    def decide(self, candidates: pd.DataFrame, *, candidate_set_id: int | None = None) -> list[DecisionRequest]:
        """Decisions for candidates with ``item_id`` and ``suggested_label`` columns (plus ``score`` if present)."""
        items = self.project.store.items_frame(include_hidden=False).set_index("id")
        sources = items["source"].reindex(candidates["item_id"]).to_numpy()
        synthetic = candidates["item_id"].to_numpy()[sources == "synthetic"]
        verdicts = self._judge_synthetic(list(synthetic), candidates.set_index("item_id")["suggested_label"])
        requests = []
        for row, source in zip(candidates.to_dict("records"), sources):
            item_id, suggested = str(row["item_id"]), row.get("suggested_label")
            score = {k: float(row[k]) for k in ("score", "U", "Div", "Q") if k in row and pd.notna(row[k])}
            if source == "synthetic":
                action, label, flags = verdicts[item_id]
            else:
                if item_id not in self._truth.index:
                    raise AddeError(f"{item_id}: the oracle needs a hidden label for pool items and this one has "
                                    "none; review it by hand or ingest the pool with an oracle_label column")
                truth = str(self._truth[item_id])
                action, label, flags = ("accept", truth, ()) if truth == suggested else ("relabel", truth, ())
            requests.append(DecisionRequest(item_id=item_id, action=action, reviewer=ORACLE_REVIEWER, label=label,
                                            flags=flags, candidate_set_id=candidate_set_id, score=score))
        return requests

    def _judge_synthetic(self, ids: list[str], intended: pd.Series) -> dict[str, tuple[str, str | None, tuple]]:
        if not ids:
            return {}
        stored = self.project.embeddings(self.model_key)
        rows = pd.Index(stored.ids).get_indexer(ids)
        if (rows < 0).any():
            raise AddeError(f"synthetic items {[i for i, r in zip(ids, rows) if r < 0][:3]} have no embedding under "
                            f"{self.model_key!r}; embed the project first")
        probs = self.reference.predict_proba(stored.vectors[rows])
        classes = self.reference.classes_
        out = {}
        for item_id, p in zip(ids, probs):
            top = int(np.argmax(p))
            want = intended.get(item_id)
            p_want = float(p[list(classes).index(want)]) if want in classes else 0.0
            if classes[top] == want and p_want >= self.accept_confidence:
                out[item_id] = ("accept", str(want), ())
            elif classes[top] != want and p[top] >= self.relabel_confidence:
                out[item_id] = ("relabel", str(classes[top]), ())
            else:
                out[item_id] = ("reject", None, ("ambiguous",))
        return out
