"""Targeted generation: generators aimed at a sparse region, behind one protocol and a registry.

Importing this package imports neither torch, torchvision nor diffusers; each
generator imports them when it fits or generates.
"""

from __future__ import annotations

from typing import Any

from adde_core.acquisition.generation.augment import AugmentationGenerator
from adde_core.acquisition.generation.base import (
    BaseGenerator,
    GeneratedBatch,
    Generator,
    ProgressCallback,
    RegionTarget,
)
from adde_core.acquisition.generation.cvae import ConditionalVAE
from adde_core.acquisition.generation.diffusion import DiffusersGenerator, describe_region_prompt
from adde_core.acquisition.generation.flow import FlowMatchingGenerator
from adde_core.registry import create_from_registry

DEFAULT_GENERATOR = "cvae"

GENERATORS: dict[str, type] = {
    "cvae": ConditionalVAE,
    "augment": AugmentationGenerator,
    "diffusers": DiffusersGenerator,
    "flow": FlowMatchingGenerator,
}
"""Generator classes by name; adding one is one class plus one line here."""


def create_generator(name: str = DEFAULT_GENERATOR, **params: Any) -> Generator:
    """Build a registered generator by name.

    Parameters
    ----------
    name : str, default DEFAULT_GENERATOR
        A key of :data:`GENERATORS`.
    **params
        Keyword hyperparameters of that generator (e.g. ``epochs`` for "cvae",
        ``model`` for "diffusers").

    Returns
    -------
    Generator

    Raises
    ------
    AddeError
        For an unknown name or a parameter the generator does not take.
    """
    return create_from_registry(GENERATORS, name, "generator", params)


__all__ = [
    "DEFAULT_GENERATOR",
    "GENERATORS",
    "AugmentationGenerator",
    "BaseGenerator",
    "ConditionalVAE",
    "DiffusersGenerator",
    "FlowMatchingGenerator",
    "GeneratedBatch",
    "Generator",
    "ProgressCallback",
    "RegionTarget",
    "create_generator",
    "describe_region_prompt",
]
