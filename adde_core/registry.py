"""Build a registered component (embedder, generator, ...) by name, with errors that list the choices."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from adde_core.errors import AddeError

T = TypeVar("T")


def create_from_registry(registry: Mapping[str, Callable[..., T]], name: str, kind: str, params: dict[str, Any]) -> T:
    """Instantiate ``registry[name](**params)``, checking the name and the parameters first.

    Parameters
    ----------
    registry
        Factories by name.
    name
        The key to build.
    kind
        What the registry holds ("embedder", "generator"), for the error message.
    params
        Keyword arguments for the factory.

    Raises
    ------
    AddeError
        For an unknown name (listing the known ones) or a parameter the factory does not
        take (listing the ones it does).
    """
    try:
        factory = registry[name]
    except KeyError:
        raise AddeError(f"Unknown {kind} {name!r}; choose one of: {', '.join(registry)}.") from None
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as exc:
        accepted = ", ".join(inspect.signature(factory).parameters)
        raise AddeError(f"Invalid parameters for {kind} {name!r} ({exc}); it accepts: {accepted}.") from None
    return factory(**params)
