"""The Ray engine's checks that need no Ray instance: missing Ray, in-memory images, malformed or dead addresses."""

from __future__ import annotations

import socket
import sys

import pytest
from PIL import Image

from adde_core.embedding import EmbeddingCache
from adde_core.embedding.distributed import RAY_REQUIREMENT, embed_with_ray
from adde_core.errors import AddeError

NAME, PARAMS = "efficientnet-lite0", {"image_size": 32, "device": "cpu"}


def test_missing_ray_says_what_to_install(monkeypatch, animal_pngs, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were not installed
    with pytest.raises(AddeError, match=rf"needs Ray: run `pip install {RAY_REQUIREMENT}`"):
        embed_with_ray(NAME, PARAMS, animal_pngs, ["k"] * len(animal_pngs), EmbeddingCache(tmp_path))
    assert RAY_REQUIREMENT == "ray==2.60.0"


def test_in_memory_images_are_refused_with_the_item_number(animal_pngs, tmp_path):
    images = [*animal_pngs[:2], Image.new("RGB", (8, 8))]
    with pytest.raises(AddeError, match=r"embeds image files, but item 2 is an in-memory Image"):
        embed_with_ray(NAME, PARAMS, images, ["a", "b", "c"], EmbeddingCache(tmp_path))


@pytest.mark.parametrize("address", ["ray://", "host:port", "ray://head:notaport"])
def test_malformed_addresses_are_named(address, animal_pngs, tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(AddeError, match=r"is not of the form 'ray://host:port', 'host:port' or 'auto'"):
        embed_with_ray(NAME, PARAMS, animal_pngs, ["k"] * 12, EmbeddingCache(tmp_path), address=address)


def test_unresolvable_host_fails_fast(animal_pngs, tmp_path):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("an initialised Ray is reused as it is, whatever the address")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for address in (f"ray://no-such-host.invalid:{port}", f"127.0.0.1:{port}"):
        with pytest.raises(AddeError, match=rf"Cannot reach the Ray cluster at '{address}'"):
            embed_with_ray(NAME, PARAMS, animal_pngs, ["k"] * 12, EmbeddingCache(tmp_path), address=address)
