"""The trainable head of f_θ: a multinomial logistic-regression layer on frozen embeddings, in torch."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adde_core.errors import AddeError


#: Guards the count of CPU fits running and the thread count to restore (torch's is process-wide).
_THREADS_LOCK = threading.Lock()
_running = 0
_threads_before = 1


@contextlib.contextmanager
def _fit_threads(device: Any) -> Iterator[None]:
    """Run a CPU fit on one torch thread, then restore the thread count.

    The problem is tiny (a few hundred × 1280 full batch): intra-op threads buy nothing, and on
    shared cores their barriers wait on descheduled threads — a fit of 300 × 1280 took 33 s with
    2 threads and 1.5 s with one at load 20 on 2 cores. One thread also makes the head bitwise the
    same in the app and in simulations (which run single-threaded), whatever the machine.
    Concurrent fits (cross-validation folds in threads) each run on one thread: the first to
    start sets the count to 1 and the last to finish restores it.
    """
    import torch

    global _running, _threads_before
    if getattr(device, "type", str(device)) != "cpu":
        yield
        return
    with _THREADS_LOCK:
        if _running == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _running += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _running -= 1
            if _running == 0:
                torch.set_num_threads(_threads_before)


class LinearHead:
    """Softmax classifier on frozen backbone embeddings (the default f_θ head).

    Features are standardised with the training set's mean and scale, then a linear
    layer is fitted by full-batch L-BFGS on the L2-regularised cross-entropy. Full-batch
    L-BFGS converges in well under a second for thousands of items and gives the same
    answer on CPU and GPU up to float rounding, which a stochastic optimiser would not.

    Parameters
    ----------
    l2 : float
        L2 penalty on the weights (per item, i.e. the loss is mean CE + l2 * ||W||²).
        1e-3 suits standardised 1280-d features with a few hundred items.
    max_iter : int
        L-BFGS iterations.
    class_weight : {"balanced", None}
        ``"balanced"`` weights each class by n / (k · n_c), so a class with 4 seed items
        is not ignored; this is what lets the head find rare classes at all.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``; see :func:`adde_core.device.resolve_device`.
    random_state : int
        Seeds the weight initialisation.

    Attributes
    ----------
    classes_ : ndarray of str
        Sorted class names; columns of :meth:`predict_proba`.
    mean_, scale_ : ndarray
        Standardisation fitted on the training features.
    coef_ : ndarray (k, d), intercept_ : ndarray (k,)
        The fitted layer, in the standardised space.
    """

    def __init__(self, *, l2: float = 1e-3, max_iter: int = 100, class_weight: str | None = "balanced",
                 device: str = "auto", random_state: int = 0) -> None:
        self.l2 = l2
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Sequence[str]) -> "LinearHead":
        """Fit on embeddings ``X`` (n, d) and string labels ``y`` (n,)."""
        import torch

        from adde_core.device import resolve_device

        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=str)
        if X.ndim != 2 or len(X) != len(y):
            raise AddeError(f"head: X has shape {X.shape} but there are {len(y)} labels")
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise AddeError(f"head: need at least two classes to train, got {list(classes)}; label more items")
        self.classes_ = classes
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-6
        device = resolve_device(self.device)
        Xt = torch.from_numpy((X - self.mean_) / self.scale_).to(device)
        yt = torch.from_numpy(codes.astype(np.int64)).to(device)
        counts = np.bincount(codes, minlength=len(classes)).astype(np.float32)
        weights = (len(y) / (len(classes) * counts)) if self.class_weight == "balanced" else np.ones_like(counts)
        wt = torch.from_numpy(weights).to(device)
        gen = torch.Generator().manual_seed(self.random_state)
        W = (torch.randn(len(classes), X.shape[1], generator=gen) * 0.01).to(device).requires_grad_(True)
        b = torch.zeros(len(classes), device=device, requires_grad=True)
        opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=self.max_iter, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(Xt @ W.T + b, yt, weight=wt) + self.l2 * (W * W).sum()
            loss.backward()
            return loss

        with _fit_threads(device):
            opt.step(closure)
        self.coef_ = W.detach().cpu().numpy()
        self.intercept_ = b.detach().cpu().numpy()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise AddeError("head: not fitted yet; call fit() first")

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, k) in the order of ``classes_``."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.coef_.shape[1]:
            raise AddeError(f"head: expected embeddings of dimension {self.coef_.shape[1]}, got shape {X.shape}")
        return ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, k), columns in the order of ``classes_``."""
        z = self.decision_function(X)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class name per row."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted head as plain arrays (what :meth:`save` writes; :meth:`from_arrays` reads them back)."""
        self._check_fitted()
        return {"classes": self.classes_.astype(str), "mean": self.mean_, "scale": self.scale_, "coef": self.coef_,
                "intercept": self.intercept_, "l2": np.float64(self.l2)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "LinearHead":
        """A fitted head from :meth:`to_arrays`'s arrays: it predicts exactly as the head that was saved."""
        head = cls(l2=float(arrays["l2"]))
        head.classes_ = np.asarray(arrays["classes"])
        head.mean_, head.scale_ = np.asarray(arrays["mean"]), np.asarray(arrays["scale"])
        head.coef_, head.intercept_ = np.asarray(arrays["coef"]), np.asarray(arrays["intercept"])
        return head

    def save(self, path: Path | str) -> None:
        """Write the fitted head as plain arrays (``.npz``, no pickle)."""
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path: Path | str) -> "LinearHead":
        """Read a head written by :meth:`save`; ``allow_pickle=False`` so a hostile file cannot run code."""
        with np.load(path, allow_pickle=False) as z:
            return cls.from_arrays({k: z[k] for k in z.files})


#: L-BFGS iterations of the loop's head: enough to converge on a few thousand items.
HEAD_MAX_ITER = 100


def fit_head(X: np.ndarray, y: np.ndarray, *, random_state: int = 0) -> LinearHead:
    """f_θ's head on the given items: the one fit used by the app, oracle stepping and every simulation."""
    if len(np.unique(y)) < 2:
        raise AddeError("D_t needs labelled items of at least two classes to train the head; label some seed items")
    return LinearHead(max_iter=HEAD_MAX_ITER, random_state=random_state).fit(X, np.asarray(y, dtype=str))
