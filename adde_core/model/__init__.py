"""f_θ: the classifier retrained each iteration on top of the frozen embedder."""

from adde_core.model.head import LinearHead

__all__ = ["LinearHead"]
