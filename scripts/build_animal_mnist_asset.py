"""Rebuild ``assets/animal_mnist/animal_mnist.npz`` from the animal-mnist 0.4 wheel.

The demo ships the converted array so that the app never depends on the
package (whose loader imports TensorFlow) at run time. The wheel stores its
arrays as gzip-compressed pickles; we unpickle them here only after checking
the wheel's SHA-256 against the published release, so no untrusted pickle is
ever loaded.

Usage::

    pip download --no-deps -d /tmp/am animal-mnist==0.4
    python scripts/build_animal_mnist_asset.py /tmp/am/animal_mnist-0.4-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

WHEEL_SHA256 = "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
OUT = Path(__file__).resolve().parents[1] / "assets" / "animal_mnist" / "animal_mnist.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    args = parser.parse_args()
    blob = args.wheel.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{args.wheel}: sha256 {digest} is not the animal-mnist 0.4 release; refusing to unpickle")
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        base = "animal_mnist/data/Animal_MNIST/"
        images = pickle.loads(gzip.decompress(zf.read(base + "animal_data_version_3.gz")))
        labels = pickle.loads(gzip.decompress(zf.read(base + "animal_label_version_3.gz")))
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, images=images, labels=labels, classes=np.array(CLASSES))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
