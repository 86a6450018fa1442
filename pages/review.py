"""Review page (coming next): ranked candidates with accept, reject, relabel and flag."""

from adde_core.ui.coming_next import coming_next
from adde_core.ui.state import require_shell

require_shell("pages/review.py")

coming_next("Review", [
    "rank retrieved and generated candidates by α·uncertainty + β·diversity + γ·quality;",
    "let you accept, reject, relabel or flag each one, saving every decision the moment you make it.",
], issue=4)
