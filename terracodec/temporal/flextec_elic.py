"""FlexTEC on TEC-ELIC's transforms: one temporal model at every rate, on our best transforms.

Why: the published FlexTEC's own transforms cap its quality (the TT issue), while
`tec-elic-s2l2a`'s reach 45+ dB on Level-2A and give the same 192-channel latent on the 1/16
grid that the transformer entropy model expects. This is TEC-TT with latent repacking
(`temporal.repacking`), its analysis and synthesis replaced by TEC-ELIC's `g_a` / `g_s` at one
gain vector (the image model's quality the transforms were taken from):

    frame --g_a--> * gain --> [channel_order] --> y --repacked 4x4 windows--> 16 tokens
          (token j: channels 12j..12j+11 of y, i.e. channel_order[12j..12j+11] of the image model's)
          tokens < k: coded (transformer prior, previous frames' latents as context)
          tokens >= k: round(mean), 0 bits, identical at both ends
    y_hat + dequantiser(features) --> [inverse order] --> * inverse_gain --> g_s --> frame

`channel_order` (config, default the identity): which of the image model's channels the latent's
channel i is. The published FlexTEC trains its transforms so that the first channel slices carry
the coarse picture; ELIC's frozen transforms do not (measured on two WorldCereal training sites:
its first 12 channels cost 13 % of the frame error of predicting every channel by its mean, the
costliest 12 channels 59 %, the costliest 48 89 %), so training orders the channels by that cost
(`training.flextec.channel_order`) and the first tokens are the ones worth sending at low k.

Quality k (1..16) is the tokens sent per window; every stream, every k, goes through the
integer entropy path of TEC-TT (`temporal.entropy_paths`). Config: TEC-TT's entropy-model keys
(`d_model`, `num_heads`, `mlp_expansion`, `layers`, windows, `context_frames`), TEC-ELIC's
transform keys (`N`, `M`), and the image model's band keys (`band_names`, `centre`,
`min_bands`): a frame coded by it is prepared exactly as the image model prepares it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from terracodec.models.elic import elic_transforms
from terracodec.registry import register_architecture
from terracodec.temporal.model import TemporalCodec


@register_architecture("tec-flextec-elic")
class ElicFlexTec(TemporalCodec):
    """FlexTEC (latent repacking) on TEC-ELIC's transforms (module docstring)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(dict(config, latent_repacking=True))
        for key in ("transform_channels", "residual_blocks"):  # the published TT's transforms: not these
            self.config.pop(key, None)

    def build_transforms(self, cfg: dict[str, Any]) -> int:
        n, m = int(cfg["N"]), int(cfg["M"])
        if m % 16:
            raise ValueError(f"latent repacking needs M divisible by 16 tokens, got {m}")
        self.g_a, self.g_s = elic_transforms(self.bands, n, m)
        self.gain = nn.Parameter(torch.ones(m))
        self.inverse_gain = nn.Parameter(torch.ones(m))
        order = torch.tensor(cfg.get("channel_order", range(m)), dtype=torch.long)
        if sorted(order.tolist()) != list(range(m)):
            raise ValueError(f"channel_order must be a permutation of 0..{m - 1}")
        self.register_buffer("channel_order", order, persistent=False)  # the config holds it
        self.register_buffer("channel_inverse", torch.argsort(order), persistent=False)
        return m

    def analysis(self, x: Tensor) -> Tensor:
        return (self.g_a(x) * self.gain[None, :, None, None])[:, self.channel_order]

    def synthesis(self, y_in: Tensor) -> Tensor:
        return self.g_s(y_in[:, self.channel_inverse] * self.inverse_gain[None, :, None, None])

    def latent_gain(self) -> Tensor:
        """The gain of each latent channel (in the latent's order): coded units per synthesis unit."""
        return self.gain[self.channel_order]

    def transform_parameters(self) -> list[nn.Parameter]:
        """The image model's part (frozen while the entropy model learns)."""
        return [*self.g_a.parameters(), *self.g_s.parameters(), self.gain, self.inverse_gain]


def from_image_codec(image: Any, quality: int, sizes: dict[str, Any]) -> ElicFlexTec:
    """A FlexTEC whose transforms and gains are TEC-ELIC model `image`'s at `quality` (1-based);
    `sizes`: the entropy model's config keys. Its entropy model starts untrained."""
    keep = ("bands", "band_names", "centre", "min_bands", "normalization", "N", "M")
    config = {k: image.config[k] for k in keep if k in image.config}
    config.update(sizes, base_model=image.config.get("name"), base_quality=int(quality),
                  latent_channels=int(image.config["M"]))
    model = ElicFlexTec(config)
    with torch.no_grad():
        model.g_a.load_state_dict(image.g_a.state_dict())
        model.g_s.load_state_dict(image.g_s.state_dict())
        model.gain.copy_(image.gain[quality - 1])
        model.inverse_gain.copy_(image.inverse_gain[quality - 1])
    return model


__all__ = ["ElicFlexTec", "from_image_codec"]
