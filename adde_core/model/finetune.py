"""Optional fine-tuning of f_θ's EfficientNet-Lite0 backbone on D_t, then re-embedding the project in the new space."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.embedding.base import ProgressCallback, check_batch_size
from adde_core.errors import AddeError

if TYPE_CHECKING:
    import torch

    from adde_core.store.database import Store
    from adde_core.workspace import Workspace

EMBEDDER_NAME = "efficientnet-lite0"

FINETUNE_NOTE = (
    "Fine-tuning trains the whole EfficientNet-Lite0 backbone on the labelled seed set and then re-embeds "
    "every item; on a CPU it is slow (measured on 2 idle cores: about 8 s per epoch on the demo's 330 seed images "
    "at 112 px plus 35 s to re-embed its 9,716 items, growing with image size and data, and many times slower "
    "on a busy machine), so run it on a GPU; the frozen backbone with a trainable head stays the default."
)
"""One line for the UI: what fine-tuning costs on a CPU (measured) and where it is worth running."""


@dataclass(frozen=True)
class TrainedBackbone:
    """What :func:`train_backbone` produced: the weights file and the classification layer trained with it.

    The layer maps a unit-norm embedding ``v`` to logits ``((v - mean) / scale) @ coef.T + intercept``,
    the same form as :class:`~adde_core.model.LinearHead`, so it can score re-embedded vectors directly.

    Attributes
    ----------
    weights_path : Path
        The ``.safetensors`` backbone state dict (everything but the ImageNet classifier).
    n_train : int
        Training images.
    epochs : int
    seconds : float
        Wall-clock time of the whole call.
    device : str
        Where it ran (``"cpu"``, ``"cuda:0"``, ...).
    classes : tuple of str
        Sorted class names; the rows of ``coef``.
    coef, intercept, mean, scale : numpy.ndarray
        The trained classification layer and the standardisation it applies.
    epoch_losses : tuple of float
        Mean (class-weighted) training cross-entropy per epoch.
    """

    weights_path: Path
    n_train: int
    epochs: int
    seconds: float
    device: str
    classes: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    epoch_losses: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.classes)
        if self.coef.shape[0] != k or self.intercept.shape != (k,):
            raise AddeError(f"Internal error: a {k}-class layer has coef {self.coef.shape}, intercept {self.intercept.shape}.")
        if len(self.epoch_losses) != self.epochs:
            raise AddeError(f"Internal error: {len(self.epoch_losses)} epoch losses for {self.epochs} epochs.")

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Return the predicted class name of each (re-embedded, unit-norm) vector."""
        logits = ((np.asarray(vectors, dtype=np.float32) - self.mean) / self.scale) @ self.coef.T + self.intercept
        return np.asarray(self.classes)[np.argmax(logits, axis=1)]


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of :func:`finetune_backbone`.

    Attributes
    ----------
    weights_path : Path
        The fine-tuned backbone (safetensors) under ``project.cache_dir / "finetuned"``.
    model_key : str
        The new embedding set's key, ``"efficientnet-lite0@<size>+ft-<sha1[:10]>"``.
    n_train : int
        Labelled seed images trained on.
    epochs : int
    seconds : float
        Wall-clock time of training plus re-embedding.
    device : str
        Where training ran.
    train_accuracy : float
        Accuracy of the trained classification layer on the training images' new
        (un-augmented) embeddings; a sanity check, not a generalisation estimate.
    base_model_key : str
        The embedding key whose backbone was the starting point.
    train_seconds, embed_seconds : float
        The two parts of ``seconds``.
    """

    weights_path: Path
    model_key: str
    n_train: int
    epochs: int
    seconds: float
    device: str
    train_accuracy: float
    base_model_key: str = ""
    train_seconds: float = 0.0
    embed_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.n_train < 2 or self.epochs < 1:
            raise AddeError(f"Internal error: fine-tuned on {self.n_train} items for {self.epochs} epochs.")
        if not 0.0 <= self.train_accuracy <= 1.0:
            raise AddeError(f"Internal error: train accuracy {self.train_accuracy} is not in [0, 1].")


def finetune_backbone(
    workspace: Workspace,
    *,
    embed: Callable[[str, dict[str, Any], ProgressCallback | None], str],
    model_key: str | None = None,
    epochs: int = 3,
    learning_rate: float = 1e-4,
    batch_size: int = 32,
    device: str = "auto",
    random_state: int = 0,
    progress: ProgressCallback | None = None,
    embed_progress: ProgressCallback | None = None,
    max_items: int | None = None,
) -> FinetuneResult:
    """Fine-tune the EfficientNet-Lite0 backbone on D_t and re-embed every item with it.

    D_t is the items with role ``"seed"``, a label and an image file. The backbone and
    a linear classification layer are trained with class-weighted cross-entropy (see
    :func:`train_backbone`); the backbone is saved as safetensors under
    ``project.cache_dir / "finetuned"`` and the project is embedded again under a new key,
    which then becomes the project's default embedding set (it is the newest
    ``efficientnet-lite0`` set). The frozen set stays stored and selectable.

    Parameters
    ----------
    workspace : Workspace
        The project's folder and store.
    embed : callable
        ``embed(embedder_name, params, progress) -> model_key``: embeds every item (the project's
        ``Project.embed``, which caches and records the run).
    model_key : str, optional
        The ``efficientnet-lite0`` embedding set to start from: its image size (and its
        weights, if it is itself fine-tuned) are reused. Default: the newest such set
        that is not fine-tuned, or the default embedder's settings if there is none.
    epochs : int, default 3
    learning_rate : float, default 1e-4
        AdamW learning rate (cosine-decayed to zero over the run).
    batch_size : int, default 32
    device : str, default "auto"
        See :func:`adde_core.device.resolve_device`; a GPU is used when present.
    random_state : int, default 0
        Seeds the subset, the batch order, the augmentation and the layer's
        initialisation; on a CPU two runs with the same value give identical weights.
    progress : ProgressCallback, optional
        Called with ``(done, total)`` after every training batch, over all epochs.
    embed_progress : ProgressCallback, optional
        Called with ``(done, total)`` while the project is re-embedded.
    max_items : int, optional
        Train on at most this many seed items, drawn round-robin over classes (for quick checks).

    Returns
    -------
    FinetuneResult

    Raises
    ------
    AddeError
        If D_t has fewer than two labelled classes with images, ``model_key`` is not an
        EfficientNet-Lite0 set, or a parameter is out of range.
    """
    started = time.perf_counter()
    store = workspace.store
    base_key, base_params = _base_embedding(store, model_key)
    frame = store.items_frame(roles=["seed"])
    frame = frame[frame["label"].notna() & frame["content_hash"].notna()]
    frame = frame.assign(path=[str(workspace.resolve_uri(u)) for u in frame["uri"]])
    frame = frame.iloc[_subset(frame["label"].to_numpy(str), max_items, random_state)]
    trained = train_backbone(
        list(frame["path"]), frame["label"].to_numpy(str),
        out_dir=workspace.cache_dir / "finetuned",
        image_size=int(base_params.get("image_size", 112)), base_weights=base_params.get("weights"),
        epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, device=device,
        random_state=random_state, progress=progress, metadata={"base_model_key": base_key},
        frozen_features=_stored_vectors(store, base_key, frame["id"]),
    )
    embed_started = time.perf_counter()
    # Stored relative to the project (Project.embed resolves it), so the folder can move.
    params = {**base_params, "weights": workspace.to_uri(trained.weights_path)}
    new_key = embed(EMBEDDER_NAME, params, embed_progress)
    stored = store.load_embeddings(new_key)
    rows = _rows_of(stored.ids, frame["id"])
    accuracy = float(np.mean(trained.predict(stored.vectors[rows]) == frame["label"].to_numpy(str)))
    return FinetuneResult(
        weights_path=trained.weights_path, model_key=new_key, n_train=trained.n_train, epochs=epochs,
        seconds=time.perf_counter() - started, device=trained.device, train_accuracy=accuracy,
        base_model_key=base_key, train_seconds=trained.seconds, embed_seconds=time.perf_counter() - embed_started,
    )


def train_backbone(
    images: Sequence[str | os.PathLike[str]],
    labels: Sequence[str],
    *,
    out_dir: Path | str,
    image_size: int = 112,
    base_weights: str | None = None,
    epochs: int = 3,
    learning_rate: float = 1e-4,
    batch_size: int = 32,
    device: str = "auto",
    random_state: int = 0,
    progress: ProgressCallback | None = None,
    frozen_features: np.ndarray | None = None,
    metadata: dict[str, str] | None = None,
) -> TrainedBackbone:
    """Fine-tune EfficientNet-Lite0 plus a linear layer on labelled images and save the backbone.

    Images get exactly the embedder's preprocessing (decoded and resized once), then
    per-image random resized crops (scale 0.7-1) and horizontal flips each epoch. The
    linear layer starts from a logistic regression on the frozen features ("linear
    probe, then fine-tune"), which distorts pretrained features less than a random
    head whose early gradients are noise. The loss is cross-entropy weighted by
    n / (k · n_c), so a class with 4 images counts as much as one with 40.
    BatchNorm statistics stay frozen: with a few hundred images, batch statistics are
    noisy, and frozen ones make training and embedding use the same network.

    Parameters
    ----------
    images : sequence of str or os.PathLike
        Image files.
    labels : sequence of str
        One class name per image; at least two classes.
    out_dir : Path or str
        Folder for the weights file, named ``efficientnet-lite0@<size>+ft-<sha1[:10]>.safetensors``.
    image_size : int, default 112
    base_weights : str, optional
        A fine-tuned ``.safetensors`` backbone to start from instead of ImageNet.
    epochs, learning_rate, batch_size, device, random_state, progress
        As in :func:`finetune_backbone`.
    frozen_features : numpy.ndarray, optional
        ``(n, 1280)`` unit-norm embeddings of ``images`` by the starting backbone, to fit
        the initial linear layer without a forward pass (the project usually has them).
    metadata : dict of str to str, optional
        Extra provenance stored in the safetensors header.

    Returns
    -------
    TrainedBackbone
    """
    import torch

    from adde_core.device import resolve_device
    from adde_core.embedding.efficientnet import build_model, normalize_batch, prepare_images
    from adde_core.model.head import LinearHead

    _check_hyperparameters(epochs, learning_rate, batch_size)
    started = time.perf_counter()
    labels = np.asarray(labels, dtype=str)
    if len(images) != len(labels):
        raise AddeError(f"Got {len(images)} images but {len(labels)} labels.")
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise AddeError(f"Fine-tuning needs labelled seed images of at least two classes, got {list(classes)}; "
                        "label more items first.")
    torch_device = resolve_device(device)
    pixels = prepare_images(images, image_size).permute(0, 3, 1, 2)  # uint8 NCHW, decoded once
    model = build_model(image_size, base_weights).to(torch_device, memory_format=torch.channels_last)
    cuda = torch_device.type == "cuda"

    def embed(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=torch_device.type, dtype=torch.bfloat16, enabled=cuda):
            pooled = model.extract_features(normalize_batch(x.to(torch_device))).mean(dim=(2, 3))
        return torch.nn.functional.normalize(pooled.float(), dim=1)

    # fork_rng: seed torch's global generators (used by the augmentation and drop-connect)
    # without changing them for the caller.
    with torch.random.fork_rng(devices=[torch_device] if cuda else []):
        torch.manual_seed(random_state)
        if frozen_features is None:
            model.eval()
            with torch.no_grad():
                chunks = [embed(pixels[i : i + batch_size]).cpu() for i in range(0, len(pixels), batch_size)]
            frozen_features = torch.cat(chunks).numpy()
        elif np.shape(frozen_features) != (len(labels), 1280):
            raise AddeError(f"frozen_features has shape {np.shape(frozen_features)}, expected {(len(labels), 1280)}.")
        probe = LinearHead(device=str(torch_device), random_state=random_state).fit(frozen_features, labels)
        mean, scale = (torch.from_numpy(a).to(torch_device) for a in (probe.mean_, probe.scale_))
        coef = torch.from_numpy(probe.coef_).to(torch_device).requires_grad_(True)
        intercept = torch.from_numpy(probe.intercept_).to(torch_device).requires_grad_(True)

        _train_mode_frozen_bn(model)
        backbone = [p for name, p in model.named_parameters() if not name.startswith("_fc.")]
        optimizer = torch.optim.AdamW([{"params": backbone}, {"params": [coef, intercept]}], lr=learning_rate)
        n_batches = -(-len(pixels) // batch_size)
        total = epochs * n_batches
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        counts = np.bincount(codes, minlength=len(classes)).astype(np.float32)
        class_weight = torch.from_numpy(len(codes) / (len(classes) * counts)).to(torch_device)
        targets = torch.from_numpy(codes.astype(np.int64))
        augment = _augmentation(image_size)
        order_gen = torch.Generator().manual_seed(random_state)
        losses = []
        for epoch in range(epochs):
            order = torch.randperm(len(pixels), generator=order_gen)
            epoch_loss = 0.0
            for b in range(n_batches):
                index = order[b * batch_size : (b + 1) * batch_size]
                batch = torch.stack([augment(pixels[i]) for i in index.tolist()])
                features = (embed(batch) - mean) / scale
                loss = torch.nn.functional.cross_entropy(
                    features @ coef.T + intercept, targets[index].to(torch_device), weight=class_weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                epoch_loss += float(loss.detach()) * len(index)
                if progress is not None:
                    progress(epoch * n_batches + b + 1, total)
            losses.append(epoch_loss / len(pixels))

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if not k.startswith("_fc.")}
    header = {"format": "adde-efficientnet-lite0-backbone", "image_size": str(image_size), "epochs": str(epochs),
              "learning_rate": repr(learning_rate), "random_state": str(random_state),
              "classes": json.dumps(classes.tolist()), **(metadata or {})}
    path = _save_weights(state, Path(out_dir), image_size, header)
    return TrainedBackbone(
        weights_path=path, n_train=len(labels), epochs=epochs, seconds=time.perf_counter() - started,
        device=str(torch_device), classes=tuple(classes.tolist()),
        coef=coef.detach().float().cpu().numpy(), intercept=intercept.detach().float().cpu().numpy(),
        mean=probe.mean_, scale=probe.scale_, epoch_losses=tuple(losses),
    )


def _check_hyperparameters(epochs: int, learning_rate: float, batch_size: int) -> None:
    """Reject values a user could type that would make training meaningless."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 1000:
        raise AddeError(f"epochs must be an integer between 1 and 1000, got {epochs!r}.")
    if not isinstance(learning_rate, (int, float)) or not 0 < learning_rate < 1:
        raise AddeError(f"learning_rate must be a number between 0 and 1 (e.g. 1e-4), got {learning_rate!r}.")
    check_batch_size(batch_size)


def _base_embedding(store: Store, model_key: str | None) -> tuple[str, dict[str, Any]]:
    """The key and embedder parameters fine-tuning starts from (see :func:`finetune_backbone`)."""
    if model_key is not None:
        name, params = store.embed_params(model_key)
        if name != EMBEDDER_NAME:
            raise AddeError(f"Only the {EMBEDDER_NAME} backbone can be fine-tuned, but {model_key!r} was made by "
                            f"{name!r}; pick an {EMBEDDER_NAME} embedding set or leave model_key empty.")
        return model_key, params
    sets = store.embedding_sets()
    frozen = sets[sets["model"].str.startswith(EMBEDDER_NAME + "@") & ~sets["model"].str.contains("+ft-", regex=False)]
    for key in frozen.sort_values("created_at")["model"].iloc[::-1]:
        try:
            return str(key), store.embed_params(str(key))[1]
        except AddeError:  # a set without its embed run (imported): try an older one
            continue
    return f"{EMBEDDER_NAME}@112", {}


def _subset(labels: np.ndarray, max_items: int | None, random_state: int) -> np.ndarray:
    """Row positions of all items, or of ``max_items`` drawn round-robin over classes in a seeded order."""
    if max_items is None or max_items >= len(labels):
        return np.arange(len(labels))
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 2:
        raise AddeError(f"max_items must be an integer of at least 2, got {max_items!r}.")
    shuffled = np.random.default_rng(random_state).permutation(len(labels))
    rank = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = shuffled[labels[shuffled] == label]
        rank[members] = np.arange(len(members))
    position = np.empty(len(labels), dtype=np.int64)
    position[shuffled] = np.arange(len(labels))
    # Round-robin: every class's first item, then every class's second, ... (ties in shuffled order).
    return np.sort(np.lexsort((position, rank))[:max_items])


def _stored_vectors(store: Store, model_key: str, ids: Sequence[str]) -> np.ndarray | None:
    """The stored vectors of ``ids`` under ``model_key``, or None when the set is absent or incomplete."""
    stored = store.load_embeddings(model_key)
    if stored is None:
        return None
    try:
        return stored.vectors[_rows_of(stored.ids, ids)]
    except AddeError:
        return None


def _rows_of(ids: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """Positions of ``wanted`` ids in ``ids``."""
    import pandas as pd

    rows = pd.Index(list(ids)).get_indexer(list(wanted))
    if (rows < 0).any():
        raise AddeError("Internal error: some training items are missing from the re-embedded set.")
    return rows


def _train_mode_frozen_bn(model: torch.nn.Module) -> None:
    """Training mode (drop-connect on) with every BatchNorm kept on its running statistics."""
    import torch

    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _augmentation(image_size: int) -> Any:
    """Light per-image augmentation on uint8 CHW tensors: random resized crop and horizontal flip."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(0.7, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
    ])


def _save_weights(state: dict[str, torch.Tensor], out_dir: Path, image_size: int, header: dict[str, str]) -> Path:
    """Write a safetensors file atomically and name it after its content's SHA-1."""
    from safetensors.torch import save_file

    from adde_core.embedding.cache import file_sha1

    out_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=".tmp-", suffix=".safetensors")
    os.close(handle)
    try:
        save_file(state, tmp_name, metadata=header)
        path = out_dir / f"{EMBEDDER_NAME}@{image_size}+ft-{file_sha1(tmp_name)[:10]}.safetensors"
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
