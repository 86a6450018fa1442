"""A small class- and position-conditional flow-matching model, trained offline on D_t, that samples images for a region.

Conditional flow matching (Lipman et al. 2023; the independent-coupling "I-CFM" of Tong et al.,
``torchcfm.ConditionalFlowMatcher`` with σ = 0) learns a velocity field ``v(x_t, t | label,
position)`` by regressing ``x1 - x0`` at ``x_t = (1 - t) x0 + t x1`` with ``x0 ~ N(0, I)`` and
``x1`` a training image. The loss is a plain regression, a few lines of torch, so no extra
package is needed. Conditioning on label and embedding position works as in the CVAE
(:class:`~adde_core.acquisition.generation.cvae.ConditionalVAE`, whose data preparation this
class reuses).

Sampling aims at a region SDEdit-style: start from a region member's image partly noised to
time ``start`` (``x = (1 - start) ε + start · member``) and integrate the learnt flow from
``start`` to 1 with ``steps`` Euler steps; with no member images it starts from pure noise
(``start = 0``). So samples stay near the region's real images while varying in shape, which
is what the quality gate (distance to the region, label agreement) asks for.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.acquisition.generation.base import GeneratedBatch, ProgressCallback, RegionTarget, check_n, sample_seeds
from adde_core.acquisition.generation.cvae import AUTO_STEPS, ConditionalVAE
from adde_core.errors import AddeError

if TYPE_CHECKING:
    import torch


class FlowMatchingGenerator(ConditionalVAE):
    """Conditional flow matching over small images, conditioned on label and embedding position.

    Parameters
    ----------
    image_size : {28, 32} or None, default None
    condition_dim : int, default 12
    epochs : int or None, default None
        None trains for about ``AUTO_STEPS`` optimiser steps (20-200 epochs), as the CVAE does.
    batch_size : int, default 64
    learning_rate : float, default 2e-3
    hidden : int, default 32
        Channels of the velocity network's convolutions.
    steps : int, default 16
        Euler steps from ``start`` to 1 when sampling.
    start : float, default 0.5
        Flow time a region member is noised to before integrating (0 = pure noise, 1 = the member itself).
    device : str, default "auto"
    num_threads : int or None, default 1
    random_state : int, default 0
    """

    name = "flow"

    def __init__(self, *, image_size: int | None = None, condition_dim: int = 12, epochs: int | None = None,
                 batch_size: int = 64, learning_rate: float = 2e-3, hidden: int = 32, steps: int = 16,
                 start: float = 0.5, device: str = "auto", num_threads: int | None = 1, random_state: int = 0) -> None:
        super().__init__(image_size=image_size, condition_dim=condition_dim, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, hidden=hidden, device=device, num_threads=num_threads,
                         random_state=random_state)
        self.steps = steps
        self.start = start

    def get_params(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "condition_dim": self.condition_dim, "epochs": self.epochs,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate, "hidden": self.hidden,
                "steps": self.steps, "start": self.start, "device": self.device, "num_threads": self.num_threads,
                "random_state": self.random_state}

    @property
    def key(self) -> str:
        size = getattr(self, "image_size_", self.image_size)
        epochs = getattr(self, "epochs_", self.epochs)
        return (f"flow@{size or 'auto'}px-c{self.condition_dim}-h{self.hidden}-e{epochs or 'auto'}-s{self.steps}"
                f"-t{self.start}-seed{self.random_state}")

    def _check_params(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise AddeError(f"steps must be a whole number >= 1, got {self.steps!r}.")
        if not 0.0 <= float(self.start) < 1.0:
            raise AddeError(f"start must lie in [0, 1), got {self.start!r}.")
        if self.image_size not in (None, 28, 32):
            raise AddeError(f"image_size must be 28, 32 or None, got {self.image_size!r}.")
        for name in ("batch_size", "hidden", "condition_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < (0 if name == "condition_dim" else 1):
                raise AddeError(f"{name} must be a positive whole number, got {v!r}.")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise AddeError(f"learning_rate must be > 0, got {self.learning_rate!r}.")

    def _train(self, x: torch.Tensor, y: np.ndarray, positions: np.ndarray | None, rng: np.random.Generator,
               devices: list, progress: ProgressCallback | None) -> None:
        import torch

        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.random_state)
            net = _velocity_network(self.channels_, len(self.classes_) + self._cond_dim, self.hidden).to(self.device_)
            optimiser = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            x1_all = (x * 2 - 1).to(self.device_)  # pixels in [-1, 1]
            c_all = self._condition_tensor(y, positions).to(self.device_)
            n = len(x)
            self.history_ = []
            net.train()
            for epoch in range(1, self.epochs_ + 1):
                order = torch.from_numpy(rng.permutation(n)).to(self.device_)
                total = torch.zeros((), device=self.device_)
                for s in range(0, n, self.batch_size):
                    idx = order[s: s + self.batch_size]
                    x1, c = x1_all[idx], c_all[idx]
                    x0 = torch.randn_like(x1)
                    t = torch.rand(len(idx), device=self.device_)
                    xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
                    loss = ((net(xt, t, c) - (x1 - x0)) ** 2).mean()
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    total += loss.detach() * len(idx)
                self.history_.append(float(total) / n)
                if not math.isfinite(self.history_[-1]):
                    raise AddeError(f"flow-matching training diverged at epoch {epoch}; lower learning_rate "
                                    f"(now {self.learning_rate}).")
                if progress is not None:
                    progress(epoch, self.epochs_)
        self.network_ = net.eval()

    def generate(self, target: RegionTarget, n: int, *, label: str | None = None, seed: int = 0,
                 progress: ProgressCallback | None = None) -> GeneratedBatch:
        """Sample ``n`` images aimed at a region (see the module docstring); each image depends only on its seed."""
        import torch

        self._check_fitted()
        n = check_n(n)
        position = self.project(target.centroid)[0] if self._cond_dim else np.zeros(0, dtype=np.float32)
        label, inferred = self._pick_label(target, label, position)
        k = self.classes_.index(label)
        seeds = sample_seeds(seed, n)
        members = list(target.member_images)
        same = [i for i, lab in enumerate(target.member_labels) if lab == label] if members else []
        anchors = same or list(range(len(members)))
        member_x = self._to_tensor(members).numpy() * 2 - 1 if members else None
        side = self.image_size_
        x = np.empty((n, self.channels_, side, side), dtype=np.float32)
        chosen: list[Any] = []
        start = float(self.start) if members else 0.0
        for i, s in enumerate(seeds):
            r = np.random.default_rng(s)
            eps = r.standard_normal((self.channels_, side, side)).astype(np.float32)
            if member_x is None:
                x[i] = eps
                chosen.append(None)
            else:
                j = anchors[int(r.integers(len(anchors)))]
                x[i] = (1 - start) * eps + start * member_x[j]
                chosen.append(target.member_ids[j] if len(target.member_ids) == len(members) else j)
        cond = self._condition_tensor(np.full(n, k), np.repeat(position[None], n, axis=0)).to(self.device_)
        xt = torch.from_numpy(x).to(self.device_)
        ts = np.linspace(start, 1.0, self.steps + 1)
        with torch.inference_mode():
            for t0, t1 in zip(ts[:-1], ts[1:]):
                t = torch.full((n,), float(t0), device=self.device_)
                xt = xt + (t1 - t0) * self.network_(xt, t, cond)
            pixels = ((xt.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
        images = [self._to_output(p) for p in pixels]
        if progress is not None:
            progress(n, n)
        params = {**self.get_params(), "label_inferred": inferred, "start_used": start,
                  "anchors": [str(c) if c is not None else None for c in chosen]}
        return GeneratedBatch(images=images, labels=[label] * n, seeds=seeds, params=params, prompt=None,
                              generator=self.key, region_id=target.region_id)

    def save(self, path: Any) -> Any:
        raise AddeError("Saving the flow-matching generator is not supported yet; it retrains on D_t in seconds.")


def _velocity_network(channels: int, n_cond: int, hidden: int) -> torch.nn.Module:
    """A small conv net at full, half and quarter resolution; time and condition enter by FiLM at each block."""
    import torch
    from torch import nn

    class _Block(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
            self.film = nn.Linear(64, 2 * c_out)
            self.norm = nn.GroupNorm(min(8, c_out), c_out)

        def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            h = self.norm(self.conv(x))
            scale, shift = self.film(e).chunk(2, dim=1)
            return nn.functional.silu(h * (1 + scale[:, :, None, None]) + shift[:, :, None, None])

    class _Velocity(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Sequential(nn.Linear(n_cond + 16, 64), nn.SiLU(), nn.Linear(64, 64))
            self.d1 = _Block(channels, hidden)
            self.d2 = _Block(hidden, 2 * hidden)
            self.mid = _Block(2 * hidden, 2 * hidden)
            self.u2 = _Block(4 * hidden, hidden)
            self.u1 = _Block(2 * hidden, hidden)
            self.out = nn.Conv2d(hidden, channels, 3, 1, 1)

        def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            freqs = torch.arange(8, device=x.device, dtype=x.dtype)
            tt = t[:, None] * (2.0 ** freqs)[None] * math.pi
            e = self.embed(torch.cat([c, torch.sin(tt), torch.cos(tt)], dim=1))
            h1 = self.d1(x, e)
            h2 = self.d2(nn.functional.avg_pool2d(h1, 2), e)
            m = self.mid(nn.functional.avg_pool2d(h2, 2), e)
            u2 = self.u2(torch.cat([nn.functional.interpolate(m, scale_factor=2), h2], dim=1), e)
            u1 = self.u1(torch.cat([nn.functional.interpolate(u2, scale_factor=2), h1], dim=1), e)
            return self.out(u1)

    return _Velocity()
