"""Trends page (coming next): quality, fairness and diversity across iterations."""

from adde_core.ui.coming_next import coming_next
from adde_core.ui.state import require_shell

require_shell("pages/trends.py")

coming_next("Trends", [
    "plot accuracy, macro-F1, worst-group accuracy, fairness gaps and diversity over iterations;",
    "replay the evolving latent map with a slider over iterations.",
], issue=5)
