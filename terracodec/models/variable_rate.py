"""Variable rate from one model: per-quality gain vectors over the latent channels.

Cui et al., "Asymmetric Gained Deep Image Compression" (CVPR 2021), as CompressAI's VBR models:
with `lambdas` in a codec's config (one per quality, lowest rate first) the model learns a
*gain* and an *inverse gain* vector per quality; `y * gain[q]` is what the entropy model codes
and `y_hat * inverse_gain[q]` is what synthesis decodes. One set of transforms and entropy
models serves every quality, so five qualities cost one model's weights.

The parameters live on the codec itself (`gain`, `inverse_gain`, shape `[qualities, M]`) so
that the state-dict keys are the same for every architecture that uses this mixin.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class VariableRateMixin:
    """Gain units for an `ImageCodec` subclass with `M` latent channels.

    Call `init_gains(config, M)` in `__init__`; wrap the latent with `gain_latent` before the
    entropy model and `ungain_latent` before synthesis. A model without `lambdas` is single
    rate and both wrappers are the identity."""

    num_qualities: int = 0
    quality_index: int = 0

    def init_gains(self, config: dict[str, Any], m: int) -> None:
        lambdas = [float(v) for v in config.get("lambdas") or []]
        self.num_qualities = len(lambdas)
        self.quality_index = 0
        if not lambdas:
            return
        if sorted(lambdas) != lambdas or lambdas[0] <= 0:
            raise ValueError("lambdas must be positive and increasing (lowest rate first)")
        # Start from the gains an MSE-optimal uniform quantiser would pick around the middle
        # lambda (step size ~ 1/sqrt(lambda)); training refines them.
        ref = lambdas[len(lambdas) // 2]
        g = torch.tensor([(v / ref) ** 0.5 for v in lambdas])[:, None].expand(-1, m)
        self.gain = nn.Parameter(g.clone())
        self.inverse_gain = nn.Parameter(1.0 / g)
        quality = config.get("quality")
        self.set_quality(int(quality) if quality is not None else len(lambdas) // 2 + 1)

    def set_quality(self, quality: int) -> None:
        """Code at quality level `quality` (1-based) of a variable-rate model."""
        if not 1 <= quality <= max(1, self.num_qualities):
            raise ValueError(f"quality {quality} outside 1..{self.num_qualities}")
        self.quality_index = quality - 1

    def _gain_row(self, vectors: Tensor, index: int | None) -> Tensor:
        q = self.quality_index if index is None else index
        return vectors[q][None, :, None, None]

    def gain_latent(self, y: Tensor, index: int | None = None) -> Tensor:
        """`y * gain[q]` (q: `index`, 0-based, or the current quality)."""
        return y * self._gain_row(self.gain, index) if self.num_qualities else y

    def ungain_latent(self, y_hat: Tensor, index: int | None = None) -> Tensor:
        """`y_hat * inverse_gain[q]`."""
        return y_hat * self._gain_row(self.inverse_gain, index) if self.num_qualities else y_hat
