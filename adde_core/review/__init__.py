"""Human review of candidates: decisions in the store, candidate sets, the oracle reviewer, and export."""

from adde_core.store.candidates import (
    candidate_set,
    candidate_sets,
    candidates_frame,
    provenance_frame,
    save_candidate_set,
    save_provenance,
)
from adde_core.store.decisions import (
    VALID_ACTIONS,
    DecisionConflict,
    DecisionRequest,
    decision_count,
    decision_log,
    decision_states,
    record_decision,
    record_decisions,
    valid_items,
)
from adde_core.review.export import ExportSummary, dataset_frame, export_dataset
from adde_core.review.oracle import ORACLE_REVIEWER, OracleReviewer

__all__ = [
    "ORACLE_REVIEWER", "VALID_ACTIONS", "DecisionConflict", "DecisionRequest", "ExportSummary", "OracleReviewer",
    "candidate_set", "candidate_sets", "candidates_frame", "dataset_frame", "decision_count", "decision_log",
    "decision_states", "export_dataset", "provenance_frame", "record_decision", "record_decisions",
    "save_candidate_set", "save_provenance", "valid_items",
]
