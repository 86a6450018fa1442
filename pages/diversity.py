"""Diversity page (coming next): Vendi, entropy, coverage and subgroup representation."""

from adde_core.ui.coming_next import coming_next
from adde_core.ui.state import require_shell

require_shell("pages/diversity.py")

coming_next("Diversity", [
    "show the Vendi score of order q, cluster-size entropy, coverage and MMD to the validation set;",
    "list every cluster with its size, label mix and subgroup mix;",
    "compare subgroup representation with a target distribution.",
], issue=3)
