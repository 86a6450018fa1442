"""A small conditional VAE, trained offline on the current dataset, that samples images aimed at a region.

The CVAE is conditioned on the item's label (one-hot) and on its *position in
embedding space*: a PCA projection of the project's embeddings to a few
dimensions, standardised per axis. Conditioning on position is what lets
``generate`` aim at a region rather than only at a class: the decoder learns what
images look like at each place of the embedding space, and sampling asks it for
the region's place. The latent ``z`` then carries what the position and the
label do not (small shifts of shape and stroke); it is drawn around the encoded
posteriors of the region's own members when their images are given.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.acquisition.generation.base import (
    BaseGenerator,
    GeneratedBatch,
    ProgressCallback,
    RegionTarget,
    check_n,
    load_image_array,
    resize_image,
    sample_seeds,
)
from adde_core.errors import AddeError
from adde_core.linalg import unit_rows

if TYPE_CHECKING:
    import torch

_SIZES = (28, 32)
_FORMAT = 1
AUTO_STEPS = 1000
"""Optimiser steps aimed for when ``epochs=None``."""


class ConditionalVAE(BaseGenerator):
    """Conditional VAE over small images, conditioned on label and embedding position.

    Parameters
    ----------
    image_size : {28, 32} or None, default None
        Side the images are resized to for training. None picks 28 when every image
        fits in 28x28 (MNIST-like data) and 32 otherwise.
    latent_dim : int, default 16
        Size of the latent code ``z``.
    condition_dim : int, default 12
        PCA dimensions of the embedding used as the position condition (capped at the
        number of training images minus one). Ignored when ``fit`` gets no conditions.
    epochs : int or None, default None
        Passes over the training images. None trains for about :data:`AUTO_STEPS`
        optimiser steps (``ceil(AUTO_STEPS / batches per epoch)``, clamped to 20-200
        epochs), so training time stays roughly constant from 300 to 2,000 images
        while small datasets still get enough updates.
    batch_size : int, default 64
    learning_rate : float, default 3e-3
        Adam step size.
    beta : float, default 1.0
        Weight of the KL term (1 is the plain VAE bound).
    hidden : int, default 16
        Channels of the first convolution (the second has twice as many). 16 trains
        2-4x faster on a CPU than 32 and aimed samples landed as close to their regions
        (Animal-MNIST, 400 images).
    temperature : float, default 1.0
        Scale of the latent noise at sampling time; below 1 gives more typical, less
        varied images.
    device : str, default "auto"
        See :func:`adde_core.device.resolve_device`: a GPU when present, else the CPU.
    num_threads : int or None, default 1
        CPU threads torch may use while training on the CPU (restored afterwards);
        None keeps torch's setting. The network is too small for intra-op threads to
        pay: on a 2-core machine with one other busy process, training took 13 s
        with 1 thread and 133 s with torch's default 2 (threads spin-waiting for a
        core); see ``benchmarks/generator_training.py``.
    random_state : int, default 0
        Seeds weight initialisation, shuffling and the reparameterisation noise.

    Attributes
    ----------
    classes_ : list of str
        Labels seen in ``fit``, in one-hot order.
    channels_ : int
        1 (grayscale) or 3 (RGB), inferred from the training images.
    image_size_ : int
        Training side in pixels.
    output_shape_ : tuple of int
        (H, W) generated images are resized to: the most common training size.
    projection_mean_, projection_components_, projection_scale_ : ndarray or None
        The position projection: ``((unit(v) - mean) @ components.T) / scale``.
    class_positions_ : ndarray (n_classes, condition_dim) or None
        Mean projected position per class (to guess a label for an unlabelled region).
    network_ : torch.nn.Module
        The trained encoder/decoder (eval mode).
    device_ : torch.device
    history_ : list of float
        Mean training loss (negative ELBO per image, in nats) per epoch.
    epochs_ : int
        Epochs actually trained.
    fit_seconds_ : float
    """

    name = "cvae"

    def __init__(self, *, image_size: int | None = None, latent_dim: int = 16, condition_dim: int = 12,
                 epochs: int | None = None, batch_size: int = 64, learning_rate: float = 3e-3, beta: float = 1.0,
                 hidden: int = 16, temperature: float = 1.0, device: str = "auto", num_threads: int | None = 1,
                 random_state: int = 0) -> None:
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.condition_dim = condition_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.beta = beta
        self.hidden = hidden
        self.temperature = temperature
        self.device = device
        self.num_threads = num_threads
        self.random_state = random_state

    @property
    def key(self) -> str:
        size = getattr(self, "image_size_", self.image_size)
        epochs = getattr(self, "epochs_", self.epochs)
        return (f"cvae@{size or 'auto'}px-z{self.latent_dim}-c{self.condition_dim}-h{self.hidden}-e{epochs or 'auto'}"
                f"-seed{self.random_state}")

    # ------------------------------------------------------------------ fit
    def fit(self, images: Sequence[Any], labels: Sequence[str], *, conditions: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> ConditionalVAE:
        """Train on the current dataset.

        Parameters
        ----------
        images : sequence of ndarray, PIL.Image.Image or paths
            Training images in any size; grayscale or colour.
        labels : sequence of str
            One label per image.
        conditions : ndarray (n, d), optional
            The images' embeddings (e.g. the project's EfficientNet-Lite0 vectors).
            Without them the model is conditioned on the label only and cannot aim
            within a class except through the members' latent codes.
        progress : ProgressCallback, optional
            Called as ``progress(epoch, epochs)`` after every epoch.

        Returns
        -------
        ConditionalVAE
            self, fitted.

        Raises
        ------
        AddeError
            For invalid hyperparameters, mismatched lengths, missing labels or
            non-finite conditions.
        """
        import torch

        from adde_core.device import resolve_device

        self._check_params()
        start = time.perf_counter()
        arrays = [load_image_array(im) for im in images]
        labels = [None if lab is None or (isinstance(lab, float) and math.isnan(lab)) else str(lab) for lab in labels]
        if len(arrays) != len(labels):
            raise AddeError(f"fit got {len(arrays)} images but {len(labels)} labels; give one label per image.")
        if len(arrays) < 2:
            raise AddeError("The conditional VAE needs at least 2 labelled images to train on.")
        unlabelled = [i for i, lab in enumerate(labels) if not lab]
        if unlabelled:
            raise AddeError(f"{len(unlabelled)} training images have no label (first at index {unlabelled[0]}); "
                            "train the CVAE on labelled items only.")
        self.channels_ = 1 if all(_is_gray(a) for a in arrays) else 3
        self.image_size_ = int(self.image_size or (28 if max(max(a.shape[:2]) for a in arrays) <= 28 else 32))
        self.output_shape_ = tuple(int(v) for v in Counter(a.shape[:2] for a in arrays).most_common(1)[0][0])
        self.classes_ = sorted(set(labels))
        y = np.array([self.classes_.index(lab) for lab in labels], dtype=np.int64)
        positions = self._fit_projection(conditions, len(arrays), y)
        x = self._to_tensor(arrays)

        self.device_ = resolve_device(self.device)
        devices = [self.device_] if self.device_.type == "cuda" else []
        rng = np.random.default_rng(self.random_state)
        n = len(arrays)
        self.epochs_ = self.epochs or int(np.clip(math.ceil(AUTO_STEPS / math.ceil(n / self.batch_size)), 20, 200))
        threads = torch.get_num_threads()
        if self.num_threads is not None and self.device_.type == "cpu":
            torch.set_num_threads(self.num_threads)
        try:
            self._train(x, y, positions, rng, devices, progress)
        finally:
            torch.set_num_threads(threads)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _train(self, x: torch.Tensor, y: np.ndarray, positions: np.ndarray | None, rng: np.random.Generator,
               devices: list, progress: ProgressCallback | None) -> None:
        import torch

        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.random_state)
            net = _build_network(self.channels_, self.image_size_, len(self.classes_), self._cond_dim,
                                 self.latent_dim, self.hidden).to(self.device_)
            optimiser = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            x_dev = x.to(self.device_)
            c_dev = self._condition_tensor(y, positions).to(self.device_)
            n = len(x)
            self.history_ = []
            net.train()
            for epoch in range(1, self.epochs_ + 1):
                order = torch.from_numpy(rng.permutation(n)).to(self.device_)
                # Summed on the device and read once per epoch: a per-step read would stall a GPU.
                total = torch.zeros((), device=self.device_)
                for s in range(0, n, self.batch_size):
                    idx = order[s: s + self.batch_size]
                    loss = _negative_elbo(net, x_dev[idx], c_dev[idx], self.beta)
                    optimiser.zero_grad(set_to_none=True)
                    (loss / len(idx)).backward()
                    optimiser.step()
                    total += loss.detach()
                self.history_.append(float(total) / n)
                if not math.isfinite(self.history_[-1]):
                    raise AddeError(f"CVAE training diverged at epoch {epoch} (loss is not finite); "
                                    f"lower learning_rate (now {self.learning_rate}).")
                if progress is not None:
                    progress(epoch, self.epochs_)
        self.network_ = net.eval()

    def _check_params(self) -> None:
        if self.image_size is not None and self.image_size not in _SIZES:
            raise AddeError(f"image_size must be None, 28 or 32, got {self.image_size!r}.")
        for name in ("latent_dim", "condition_dim", "epochs", "batch_size", "hidden", "num_threads"):
            value = getattr(self, name)
            if value is None and name in ("epochs", "num_threads"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AddeError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("learning_rate", "temperature"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
                raise AddeError(f"{name} must be a positive number, got {value!r}.")
        if not isinstance(self.beta, (int, float)) or not self.beta >= 0:
            raise AddeError(f"beta must be a non-negative number, got {self.beta!r}.")

    def _fit_projection(self, conditions: np.ndarray | None, n: int, y: np.ndarray) -> np.ndarray | None:
        """Fit the PCA position projection and return the projected training positions."""
        from adde_core.analysis.density import fit_pca

        self.projection_mean_ = self.projection_components_ = self.projection_scale_ = None
        self.class_positions_ = None
        if conditions is None:
            return None
        c = np.asarray(conditions, dtype=np.float32)
        if c.ndim != 2 or c.shape[0] != n:
            raise AddeError(f"conditions must have one row per image: got shape {c.shape} for {n} images.")
        if not np.all(np.isfinite(c)):
            raise AddeError("conditions contain NaN or infinite values; re-embed the images.")
        k = min(self.condition_dim, n - 1, c.shape[1])
        mean, components, _ = fit_pca(unit_rows(c), k)
        projected = (unit_rows(c) - mean) @ components.T
        scale = projected.std(axis=0)
        self.projection_mean_ = mean.astype(np.float32)
        self.projection_components_ = components.astype(np.float32)
        # Unit variance per axis keeps the condition on the same scale as the one-hot label.
        self.projection_scale_ = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        positions = (projected / self.projection_scale_).astype(np.float32)
        self.class_positions_ = np.stack([positions[y == k].mean(axis=0) for k in range(len(self.classes_))])
        return positions

    @property
    def _cond_dim(self) -> int:
        return 0 if self.projection_components_ is None else int(self.projection_components_.shape[0])

    # ------------------------------------------------------------------ generate
    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Map embeddings (or a centroid) to the standardised position the model is conditioned on.

        Parameters
        ----------
        vectors : ndarray (d,) or (m, d)
            In the space of the ``conditions`` given to ``fit``. Rows are scaled to unit
            length first (as in ``fit``), so a centroid is projected by its direction.

        Returns
        -------
        numpy.ndarray
            float32 array of shape (m, condition_dim), or (m, 0) without conditions.
        """
        self._check_fitted()
        v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if self.projection_components_ is None:
            return np.zeros((len(v), 0), dtype=np.float32)
        if v.shape[1] != self.projection_mean_.shape[0]:
            raise AddeError(f"The region's embedding has {v.shape[1]} dimensions but this CVAE was trained with "
                            f"{self.projection_mean_.shape[0]}-d conditions; refit it on the embedding set the "
                            "region was found in.")
        return (((unit_rows(v) - self.projection_mean_) @ self.projection_components_.T)
                / self.projection_scale_).astype(np.float32)

    def generate(self, target: RegionTarget, n: int, *, label: str | None = None, seed: int = 0,
                 progress: ProgressCallback | None = None) -> GeneratedBatch:
        """Sample ``n`` images aimed at a region.

        Every sample is conditioned on the projection of the region's centroid and on
        the label. Its latent code is drawn around the posterior mean of one region
        member (``z = mu_i + temperature * sigma_i * eps``, member chosen at random,
        preferring members with the generated label) when ``target.member_images``
        is not empty, and from the prior ``N(0, temperature^2 I)`` otherwise.

        Parameters
        ----------
        target : RegionTarget
        n : int
            Number of images.
        label : str, optional
            Label to generate; default the region's dominant label, or, for a region
            with no labelled members, the class whose mean position is nearest the
            centroid (``params["label_inferred"]`` is then True).
        seed : int, default 0
            Per-image seeds are derived from it; each image depends only on its own.
        progress : ProgressCallback, optional

        Returns
        -------
        GeneratedBatch
            uint8 images of ``output_shape_`` (HxW for grayscale, HxWx3 for colour).
        """
        import torch

        self._check_fitted()
        n = check_n(n)
        position = self.project(target.centroid)[0] if self._cond_dim else np.zeros(0, dtype=np.float32)
        label, inferred = self._pick_label(target, label, position)
        k = self.classes_.index(label)
        seeds = sample_seeds(seed, n)
        mu, sigma, anchors = self._member_posteriors(target, label, position)

        z = np.empty((n, self.latent_dim), dtype=np.float32)
        chosen = []
        for i, s in enumerate(seeds):
            rng = np.random.default_rng(s)
            eps = rng.standard_normal(self.latent_dim).astype(np.float32) * self.temperature
            if mu is None:
                z[i] = eps
                chosen.append(None)
            else:
                j = int(anchors[rng.integers(len(anchors))])
                z[i] = mu[j] + sigma[j] * eps
                # Name the anchor by item id when the ids line up with the images.
                chosen.append(target.member_ids[j] if len(target.member_ids) == len(target.member_images) else j)
        cond = self._condition_tensor(np.full(n, k), np.repeat(position[None], n, axis=0))
        with torch.inference_mode():
            logits = self.network_.decode(torch.from_numpy(z).to(self.device_), cond.to(self.device_))
            pixels = torch.sigmoid(logits).mul(255).round().to(torch.uint8).cpu().numpy()
        images = [self._to_output(p) for p in pixels]
        if progress is not None:
            progress(n, n)
        params = {**self._json_params(), "label_inferred": inferred,
                  "z_source": "prior" if mu is None else "members", "n_anchor_members": 0 if mu is None else
                  len(anchors), "anchors": [str(c) if c is not None else None for c in chosen]}
        return GeneratedBatch(images=images, labels=[label] * n, seeds=seeds, params=params, prompt=None,
                              generator=self.key, region_id=target.region_id)

    def _pick_label(self, target: RegionTarget, label: str | None, position: np.ndarray) -> tuple[str, bool]:
        label = label if label is not None else target.dominant_label
        if label is None:
            if self.class_positions_ is None:
                raise AddeError(f"Region {target.region_id!r} has no labelled members and this CVAE has no position "
                                "conditions to guess one from; pass label=... to generate().")
            return self.classes_[int(np.argmin(((self.class_positions_ - position) ** 2).sum(axis=1)))], True
        if str(label) not in self.classes_:
            raise AddeError(f"The CVAE was trained on labels {self.classes_}; it cannot generate {label!r}. "
                            "Refit it on a dataset that has that label, or pick another.")
        return str(label), False

    def _member_posteriors(self, target: RegionTarget, label: str,
                           position: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Encode the region's member images; return (mu, sigma, indices of preferred anchors)."""
        import torch

        if not target.member_images:
            return None, None, np.zeros(0, dtype=np.int64)
        m = len(target.member_images)
        member_labels = [lab if lab in self.classes_ else label for lab in target.member_labels]
        y = np.array([self.classes_.index(lab) for lab in member_labels])
        if target.member_vectors is not None and self._cond_dim:
            positions = self.project(target.member_vectors)
        else:
            positions = np.repeat(position[None], m, axis=0)
        x = self._to_tensor(list(target.member_images)).to(self.device_)
        with torch.inference_mode():
            mu, logvar = self.network_.encode(x, self._condition_tensor(y, positions).to(self.device_))
        same = np.flatnonzero(np.array(target.member_labels, dtype=object) == label)
        anchors = same if len(same) else np.arange(m)
        return mu.cpu().numpy(), torch.exp(0.5 * logvar).cpu().numpy(), anchors

    # ------------------------------------------------------------------ tensors
    def _to_tensor(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize to the training side and channels and scale to [0, 1] as NCHW float32."""
        import torch

        size = (self.image_size_, self.image_size_)
        batch = np.stack([resize_image(a, size, channels=self.channels_) for a in arrays]).astype(np.float32) / 255.0
        if self.channels_ == 1:
            batch = batch[:, None]
        else:
            batch = batch.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(batch))

    def _condition_tensor(self, y: np.ndarray, positions: np.ndarray | None) -> torch.Tensor:
        import torch

        onehot = np.eye(len(self.classes_), dtype=np.float32)[np.asarray(y, dtype=np.int64)]
        if positions is not None and self._cond_dim:
            onehot = np.concatenate([onehot, np.asarray(positions, dtype=np.float32)], axis=1)
        return torch.from_numpy(onehot)

    def _to_output(self, chw: np.ndarray) -> np.ndarray:
        image = chw[0] if self.channels_ == 1 else chw.transpose(1, 2, 0)
        return resize_image(image, self.output_shape_, channels=self.channels_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise AddeError("This CVAE is not trained yet: call fit(images, labels, conditions=...) first, "
                            "or ConditionalVAE.load(path).")

    def _json_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items()}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the trained model to one ``.safetensors`` file (weights, projection and settings; no pickle).

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        pathlib.Path
        """
        import torch
        from safetensors.torch import save_file

        self._check_fitted()
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.network_.state_dict().items()}
        for name in ("projection_mean_", "projection_components_", "projection_scale_", "class_positions_"):
            value = getattr(self, name)
            if value is not None:
                tensors[f"fitted.{name}"] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        meta = {"format": _FORMAT, "params": self.get_params(), "classes": self.classes_,
                "channels": self.channels_, "image_size": self.image_size_, "output_shape": list(self.output_shape_),
                "epochs": self.epochs_, "history": self.history_, "fit_seconds": self.fit_seconds_}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"adde_cvae": json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "auto") -> ConditionalVAE:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
        device : str, default "auto"
            Where to run it (it need not be where it was trained).

        Returns
        -------
        ConditionalVAE

        Raises
        ------
        AddeError
            If the file is missing or is not a CVAE written by ADDE.
        """
        from safetensors import safe_open
        from safetensors.torch import load_file

        from adde_core.device import resolve_device

        path = Path(path)
        if not path.is_file():
            raise AddeError(f"No CVAE file at {path}.")
        try:
            with safe_open(str(path), framework="pt") as fh:
                raw = (fh.metadata() or {}).get("adde_cvae")
            tensors = load_file(str(path))
        except Exception as exc:
            raise AddeError(f"Cannot read CVAE file {path}: it is not a valid safetensors file ({exc}).") from exc
        if raw is None:
            raise AddeError(f"{path} is a safetensors file but not a CVAE saved by ADDE (no 'adde_cvae' metadata).")
        meta = json.loads(raw)
        if meta.get("format") != _FORMAT:
            raise AddeError(f"{path} has CVAE format {meta.get('format')!r}; this version reads format {_FORMAT}.")
        params = dict(meta["params"])
        params["device"] = device
        model = cls(**params)
        model.classes_ = list(meta["classes"])
        model.channels_ = int(meta["channels"])
        model.image_size_ = int(meta["image_size"])
        model.output_shape_ = tuple(int(v) for v in meta["output_shape"])
        model.history_ = [float(v) for v in meta["history"]]
        model.epochs_ = int(meta["epochs"])
        model.fit_seconds_ = float(meta["fit_seconds"])
        for name in ("projection_mean_", "projection_components_", "projection_scale_", "class_positions_"):
            value = tensors.get(f"fitted.{name}")
            setattr(model, name, None if value is None else value.numpy())
        model.device_ = resolve_device(device)
        net = _build_network(model.channels_, model.image_size_, len(model.classes_), model._cond_dim,
                             model.latent_dim, model.hidden)
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        model.network_ = net.to(model.device_).eval()
        return model


# ---------------------------------------------------------------------- helpers


def _is_gray(array: np.ndarray) -> bool:
    """True for HxW arrays and for colour arrays whose channels are all equal (grayscale saved as RGB)."""
    if array.ndim == 2:
        return True
    rgb = array[:, :, :3]
    return bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]))


def _negative_elbo(net: Any, x: torch.Tensor, c: torch.Tensor, beta: float) -> torch.Tensor:
    """Summed (over the batch) Bernoulli reconstruction loss plus beta * KL to the standard normal."""
    import torch
    import torch.nn.functional as F

    mu, logvar = net.encode(x, c)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = net.decode(z, c)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return recon + beta * kl


def _build_network(channels: int, size: int, n_classes: int, cond_dim: int, latent_dim: int,
                   hidden: int) -> torch.nn.Module:
    """Two stride-2 convolutions down to size/4, dense layers, and the mirror image up."""
    import torch
    from torch import nn

    side = size // 4
    features = 2 * hidden * side * side
    n_cond = n_classes + cond_dim

    class _CVAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(channels, hidden, 4, 2, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(hidden, 2 * hidden, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten())
            self.enc = nn.Sequential(nn.Linear(features + n_cond, 256), nn.LeakyReLU(0.2))
            self.mu = nn.Linear(256, latent_dim)
            self.logvar = nn.Linear(256, latent_dim)
            self.dec = nn.Sequential(
                nn.Linear(latent_dim + n_cond, 256), nn.ReLU(), nn.Linear(256, features), nn.ReLU(),
                nn.Unflatten(1, (2 * hidden, side, side)),
                nn.ConvTranspose2d(2 * hidden, hidden, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(hidden, channels, 4, 2, 1))

        def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.enc(torch.cat([self.conv(x), c], dim=1))
            # Clamped so exp() cannot overflow early in training.
            return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)

        def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return self.dec(torch.cat([z, c], dim=1))

    return _CVAE()
