"""Text-to-image generation with a diffusers pipeline driven by a prompt that describes the region.

Weights come from a local folder (``pipeline.save_pretrained`` layout) or a hub id.
Offline, a hub id that is not in the local Hugging Face cache fails at once with
instructions for supplying the weights; nothing waits on the network.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from adde_core.errors import AddeError, WeightsUnavailableError

_INDEX = "model_index.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def describe_region_prompt(target: RegionTarget, *, label: str | None = None,
                           attribute_words: Sequence[str] | None = None,
                           template: str = "a photo of {subject}", min_share: float = 0.5) -> str:
    """Write a text prompt for a region from what is known about it.

    The subject is ``label``, else the region's dominant label, else the most common
    label among the nearest dataset examples, else "an object". Each subgroup
    attribute whose most common value covers at least ``min_share`` of the members
    adds "<value> <attribute>" (e.g. "upright pose"). Attribute words (for example
    CLIP zero-shot attributes of the members) follow, de-duplicated, in the order given.

    Parameters
    ----------
    target : RegionTarget
    label : str, optional
        The label the images should show; overrides the region's labels.
    attribute_words : sequence of str, optional
        Extra descriptive words or phrases.
    template : str, default "a photo of {subject}"
        Must contain ``{subject}``, which becomes e.g. "an elephant". For the
        Animal-MNIST demo, "a white silhouette of {subject} on a black background"
        matches the data better.
    min_share : float, default 0.5
        Share a subgroup value needs to be mentioned.

    Returns
    -------
    str
        For example ``"a photo of a horse, upright pose, striped"``.
    """
    if "{subject}" not in template:
        raise AddeError(f"The prompt template must contain '{{subject}}', got {template!r}.")
    subject = label or target.dominant_label
    if subject is None:
        known = [lab for lab in target.nearest_example_labels if lab]
        subject = max(set(known), key=known.count) if known else None
    parts = [template.format(subject=_with_article(subject.replace("_", " ")) if subject else "an object")]
    for attribute, mix in target.subgroup_counts.items():
        total = sum(mix.values())
        if not total:
            continue
        value, count = max(mix.items(), key=lambda kv: kv[1])
        if count / total >= min_share and str(value).strip():
            parts.append(f"{value} {attribute}".replace("_", " "))
    for word in attribute_words or ():
        word = str(word).strip()
        if word and word not in parts:
            parts.append(word)
    return ", ".join(parts)


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


class DiffusersGenerator(BaseGenerator):
    """Generate images from a text prompt with a ``diffusers`` pipeline (Stable Diffusion and the like).

    Parameters
    ----------
    model : str
        A folder written by ``pipeline.save_pretrained`` (holding ``model_index.json``)
        or a Hugging Face hub id such as ``"stabilityai/sd-turbo"``.
    local_files_only : bool or None, default None
        Never touch the network. None means: only when ``HF_HUB_OFFLINE`` (or
        ``TRANSFORMERS_OFFLINE``) is set.
    device : str, default "auto"
    torch_dtype : {"auto", "float16", "bfloat16", "float32"}, default "auto"
        "auto" uses float16 on a GPU and float32 on the CPU.
    num_inference_steps : int, default 25
    guidance_scale : float, default 7.5
    negative_prompt : str or None, default "blurry, distorted, text, watermark"
    generation_size : int or None, default None
        Height and width asked of the pipeline (None: the pipeline's default).
    output_size : tuple (H, W) or None, default None
        Size of the returned images; None uses the project's size learned by ``fit``
        (or, without fit, the region's member images), else the pipeline's output.
    output_mode : {"L", "RGB"} or None, default None
        Like ``output_size``, for grayscale or colour.
    batch_size : int, default 4
        Images per pipeline call.
    template : str, default "a photo of {subject}"
        Passed to :func:`describe_region_prompt` when no prompt is given.
    pipeline : object, optional
        An already-built pipeline (anything called like a diffusers pipeline that
        returns an object with ``.images``). When given, ``model`` only names it.

    Attributes
    ----------
    output_shape_, channels_ : set by ``fit`` from the dataset images.
    pipeline_ : the loaded pipeline (after the first ``generate`` or ``load_pipeline``).
    """

    name = "diffusers"

    def __init__(self, *, model: str, local_files_only: bool | None = None, device: str = "auto",
                 torch_dtype: str = "auto", num_inference_steps: int = 25, guidance_scale: float = 7.5,
                 negative_prompt: str | None = "blurry, distorted, text, watermark", generation_size: int | None = None,
                 output_size: tuple[int, int] | None = None, output_mode: str | None = None, batch_size: int = 4,
                 template: str = "a photo of {subject}", pipeline: Any | None = None) -> None:
        self.model = model
        self.local_files_only = local_files_only
        self.device = device
        self.torch_dtype = torch_dtype
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.generation_size = generation_size
        self.output_size = output_size
        self.output_mode = output_mode
        self.batch_size = batch_size
        self.template = template
        self.pipeline = pipeline

    @property
    def key(self) -> str:
        return f"diffusers:{self.model}@{self.num_inference_steps}steps-cfg{self.guidance_scale:g}"

    def fit(self, images: Sequence[Any], labels: Sequence[str], *, conditions: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> DiffusersGenerator:
        """Learn only the project's image size and mode (from up to 256 images); no weights change.

        Parameters
        ----------
        images : sequence of ndarray, PIL.Image.Image or paths
        labels, conditions : ignored
        progress : ProgressCallback, optional

        Returns
        -------
        DiffusersGenerator
        """
        from collections import Counter

        sample = [load_image_array(im) for im in list(images)[:256]]
        if sample:
            self.output_shape_ = tuple(int(v) for v in Counter(a.shape[:2] for a in sample).most_common(1)[0][0])
            self.channels_ = 1 if all(a.ndim == 2 for a in sample) else 3
        if progress is not None:
            progress(1, 1)
        return self

    # ------------------------------------------------------------------ loading
    def load_pipeline(self) -> Any:
        """Return the pipeline, loading it on first use.

        Returns
        -------
        object
            A ``diffusers.DiffusionPipeline`` on the chosen device.

        Raises
        ------
        AddeError
            If the folder is missing or is not a diffusers pipeline, or a component
            needs a package that is not installed.
        WeightsUnavailableError
            If a hub id is not in the local cache and cannot be downloaded now; the
            message says how to supply the weights locally.
        """
        if self.pipeline is not None:
            return self.pipeline
        if getattr(self, "pipeline_", None) is not None:
            return self.pipeline_
        source, local_only = resolve_pipeline_source(self.model, local_files_only=self.local_files_only)
        import torch

        from adde_core.device import resolve_device

        try:
            from diffusers import DiffusionPipeline
        except ImportError as exc:
            raise AddeError("The diffusers generator needs the `diffusers` package: run `pip install diffusers` "
                            "(see requirements.txt).") from exc
        device = resolve_device(self.device)
        dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
        if self.torch_dtype == "auto":
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        elif self.torch_dtype in dtypes:
            dtype = dtypes[self.torch_dtype]
        else:
            raise AddeError(f"torch_dtype must be 'auto' or one of {sorted(dtypes)}, got {self.torch_dtype!r}.")
        # diffusers renamed torch_dtype to dtype (the old name warns, and goes in 1.0); the docstring tells which.
        dtype_key = "dtype" if "dtype (`" in (DiffusionPipeline.from_pretrained.__doc__ or "") else "torch_dtype"
        try:
            pipe = DiffusionPipeline.from_pretrained(source, local_files_only=local_only, **{dtype_key: dtype})
        except (ImportError, ModuleNotFoundError) as exc:
            raise AddeError(f"Loading the diffusion pipeline {self.model!r} needs a package that is not installed "
                            f"({exc}); Stable Diffusion pipelines need `pip install transformers`.") from exc
        except OSError as exc:
            raise WeightsUnavailableError(_how_to_supply(self.model, f"diffusers could not load it ({exc})")) from exc
        pipe = pipe.to(device)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        self.pipeline_ = pipe
        return pipe

    # ------------------------------------------------------------------ generate
    def generate(self, target: RegionTarget, n: int, *, label: str | None = None, seed: int = 0,
                 progress: ProgressCallback | None = None, prompt: str | None = None,
                 attribute_words: Sequence[str] | None = None) -> GeneratedBatch:
        """Generate ``n`` images for a region from a prompt.

        Parameters
        ----------
        target : RegionTarget
        n : int
        label : str, optional
            The label the images are meant to show (default: the region's dominant
            label); it is also the prompt's subject unless ``prompt`` is given.
        seed : int, default 0
            Per-image seeds feed CPU ``torch.Generator`` objects, so an image depends
            only on its seed, the prompt and the settings.
        progress : ProgressCallback, optional
            Called after every pipeline batch.
        prompt : str, optional
            The user's (edited) prompt; default :func:`describe_region_prompt`.
        attribute_words : sequence of str, optional
            Extra words for the automatic prompt.

        Returns
        -------
        GeneratedBatch
            Images resized to the project's size and mode; ``prompt`` is the prompt used.

        Raises
        ------
        AddeError
            If no label can be determined, or the pipeline cannot be loaded.
        """
        import torch

        n = check_n(n)
        self._check_params()
        label = label if label is not None else target.dominant_label
        if label is None:
            raise AddeError(f"Region {target.region_id!r} has no labelled members, so the label of the generated "
                            "images is unknown; pass label=... to generate().")
        if prompt is None:
            prompt = describe_region_prompt(target, label=label, attribute_words=attribute_words,
                                            template=self.template)
        elif not str(prompt).strip():
            raise AddeError("The prompt is empty; write what the images should show, or leave it out to use the "
                            "region's description.")
        pipe = self.load_pipeline()
        accepted = _accepted_kwargs(pipe)
        shape, channels = self._output_format(target)
        seeds = sample_seeds(seed, n)
        images: list[np.ndarray] = []
        for start in range(0, n, self.batch_size):
            batch_seeds = seeds[start: start + self.batch_size]
            kwargs: dict[str, Any] = {
                "prompt": [prompt] * len(batch_seeds),
                "num_inference_steps": self.num_inference_steps,
                "guidance_scale": self.guidance_scale,
                # CPU generators make the same image for a seed on any device.
                "generator": [torch.Generator(device="cpu").manual_seed(s) for s in batch_seeds],
                "num_images_per_prompt": 1,
            }
            if self.negative_prompt:
                kwargs["negative_prompt"] = [self.negative_prompt] * len(batch_seeds)
            if self.generation_size:
                kwargs["height"] = kwargs["width"] = self.generation_size
            # Unconditional pipelines (e.g. DDPM) take a batch size instead of prompts.
            if accepted is not None and "batch_size" in accepted:
                kwargs["batch_size"] = len(batch_seeds)
            if accepted is not None:
                kwargs = {k: v for k, v in kwargs.items() if k in accepted}
            result = pipe(**kwargs)
            produced = result.images if hasattr(result, "images") else result[0]
            if len(produced) != len(batch_seeds):
                raise AddeError(f"The diffusion pipeline returned {len(produced)} images for a batch of "
                                f"{len(batch_seeds)}.")
            for image in produced:
                array = _pipeline_image_to_uint8(image)
                images.append(array if shape is None else resize_image(array, shape, channels=channels))
            if progress is not None:
                progress(len(images), n)
        params = {k: v for k, v in self.get_params().items() if k != "pipeline"}
        params.update(prompt_used=accepted is None or "prompt" in accepted, output_shape=list(shape) if shape else None,
                      output_channels=channels)
        if params["output_size"] is not None:
            params["output_size"] = list(params["output_size"])
        return GeneratedBatch(images=images, labels=[label] * n, seeds=seeds, params=params, prompt=prompt,
                              generator=self.key, region_id=target.region_id)

    def _output_format(self, target: RegionTarget) -> tuple[tuple[int, int] | None, int | None]:
        """The (H, W) and channel count outputs are resized to, in order of precedence (see class docstring)."""
        shape = tuple(self.output_size) if self.output_size else getattr(self, "output_shape_", None)
        channels = {"L": 1, "RGB": 3}.get(self.output_mode or "", getattr(self, "channels_", None))
        if target.member_images:
            if shape is None:
                shape = target.member_images[0].shape[:2]
            if channels is None:
                channels = 1 if all(im.ndim == 2 for im in target.member_images) else 3
        return (None if shape is None else (int(shape[0]), int(shape[1]))), channels

    def _check_params(self) -> None:
        if self.output_mode not in (None, "L", "RGB"):
            raise AddeError(f"output_mode must be None, 'L' or 'RGB', got {self.output_mode!r}.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise AddeError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        if self.output_size is not None and (len(self.output_size) != 2 or min(self.output_size) < 1):
            raise AddeError(f"output_size must be None or (height, width), got {self.output_size!r}.")


def resolve_pipeline_source(model: str, *, local_files_only: bool | None = None) -> tuple[str, bool]:
    """Decide where a pipeline's weights come from, failing fast when they cannot be had.

    Parameters
    ----------
    model : str
        A local folder or a hub id.
    local_files_only : bool or None
        None follows ``HF_HUB_OFFLINE`` (see :func:`adde_core.embedding.hub.hub_offline`).

    Returns
    -------
    source : str
        The folder path or hub id to pass to ``from_pretrained``.
    local_files_only : bool
        Whether ``from_pretrained`` must stay offline.

    Raises
    ------
    AddeError
        For a missing folder, or a folder that is not a diffusers pipeline.
    WeightsUnavailableError
        For a hub id not in the local cache while offline, or one the hub does
        not answer for within :data:`adde_core.embedding.hub.PROBE_TIMEOUT_S`.
    """
    from adde_core.embedding.hub import hub_offline

    model = str(model or "").strip()
    if not model:
        raise AddeError("No diffusion model given: pass model='/path/to/pipeline-folder' or a hub id.")
    path = Path(model).expanduser()
    explicit_path = model.startswith(("/", "./", "../", "~")) or os.sep in model and not _HUB_ID.match(model)
    if path.exists() or explicit_path or not _HUB_ID.match(model):
        if not path.is_dir():
            raise AddeError(f"Diffusion model folder {path} does not exist (or is not a folder). "
                            f"{_SUPPLY_FOLDER}")
        if not (path / _INDEX).is_file():
            raise AddeError(f"{path} is not a diffusers pipeline folder: it has no {_INDEX}. {_SUPPLY_FOLDER}")
        return str(path), True

    offline = hub_offline() if local_files_only is None else bool(local_files_only)
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, _INDEX), str):
        return model, True
    missing = f" (there is no local folder named {path.resolve()} either)"
    if offline:
        raise WeightsUnavailableError(_how_to_supply(
            model, "they are not in the local Hugging Face cache and offline mode is on "
                   f"({'HF_HUB_OFFLINE is set' if local_files_only is None else 'local_files_only=True'})" + missing))
    from adde_core.embedding.hub import _probe

    try:
        found = _probe(model, _INDEX, model, "diffusers")
    except WeightsUnavailableError as exc:
        raise WeightsUnavailableError(_how_to_supply(
            model, "the Hugging Face hub cannot be reached or did not answer in time" + missing)) from exc
    if not found:
        raise WeightsUnavailableError(_how_to_supply(model, f"the hub repository has no {_INDEX}, so it is not a "
                                                            "diffusers pipeline"))
    return model, False


_SUPPLY_FOLDER = ("Pass the folder written by `pipeline.save_pretrained(folder)` (it holds model_index.json and one "
                  "sub-folder per component), or a hub id.")


def _how_to_supply(model: str, reason: str) -> str:
    """The user-facing message that says how to provide pipeline weights without network access."""
    return (
        f"Diffusion weights {model!r} are unavailable: {reason}.\n"
        "Supply them locally in one of these ways:\n"
        f"  1. on a machine with network access run `hf download {model} --local-dir /some/folder` "
        f"(`huggingface-cli download {model} --local-dir /some/folder` with huggingface_hub < 1.0), copy the "
        "folder here and pass model='/some/folder';\n"
        "  2. or copy ~/.cache/huggingface/hub from that machine to the same place here and set "
        "HF_HUB_OFFLINE=1; the hub id then loads from that cache;\n"
        "  3. or use the offline generators 'cvae' or 'augment', which need no download."
    )


def _accepted_kwargs(pipe: Any) -> set[str] | None:
    """Keyword names the pipeline's call takes, or None when it takes ``**kwargs`` (pass everything)."""
    try:
        parameters = inspect.signature(pipe.__call__).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _pipeline_image_to_uint8(image: Any) -> np.ndarray:
    """PIL images pass through load_image_array; float arrays in [0, 1] (output_type='np') are scaled."""
    if hasattr(image, "detach"):
        image = image.detach().float().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.transpose(1, 2, 0)
    return load_image_array(np.asarray(image) if not hasattr(image, "mode") else image)
