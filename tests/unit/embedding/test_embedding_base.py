"""The shared batching loop: order, progress and errors, with and without prefetching."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.embedding.base import check_batch_size, run_batches
from adde_core.errors import AddeError


@pytest.mark.parametrize("prefetch", [False, True])
def test_run_batches_keeps_order_and_reports_progress(prefetch):
    calls = []
    out = run_batches(
        list(range(10)),
        batch_size=4,
        dim=2,
        prepare=lambda batch: np.array(batch, dtype=np.float32),
        compute=lambda x: np.stack([x, -x], axis=1),
        progress=lambda done, total: calls.append((done, total)),
        prefetch=prefetch,
    )
    np.testing.assert_array_equal(out[:, 0], np.arange(10))
    assert out.dtype == np.float32 and calls == [(4, 10), (8, 10), (10, 10)]


@pytest.mark.parametrize("prefetch", [False, True])
def test_errors_in_prepare_reach_the_caller(prefetch):
    def prepare(batch):
        if 7 in batch:
            raise AddeError("Cannot read image seven.png")
        return np.zeros((len(batch), 1), np.float32)

    with pytest.raises(AddeError, match=r"seven\.png"):
        run_batches(list(range(10)), batch_size=3, dim=1, prepare=prepare, compute=lambda x: x, prefetch=prefetch)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "64"])
def test_batch_size_must_be_a_positive_integer(bad):
    with pytest.raises(AddeError, match="batch_size"):
        check_batch_size(bad)
