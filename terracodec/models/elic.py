"""TEC-ELIC: ELIC (He et al., CVPR 2022) for multispectral tiles, as in TerraCodec v1.

Transforms: residual-bottleneck stacks with attention, four stride-2 stages (1/16 resolution,
`M` latent channels). Entropy model: a hyperprior (`z` at 1/64 resolution) plus uneven channel
groups (16, 16, 32, 64, M - 128), each coded in two checkerboard passes. TerraCodec v1's
TEC-ELIC is CompressAI's `Elic2022Chandelier` with `C` input/output bands and no [0, 1]
clamping; module names here reproduce its state-dict keys
(`latent_codec.y.latent_codec.y0.context_prediction.weight`, ...).

Everything that predicts entropy parameters (h_s, channel context, checkerboard context,
parameter aggregation) runs in exact fixed point while coding, so decoding is bit-exact across
threads, batch sizes and devices (`terracodec.layers.fixedpoint`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from terracodec.entropy.bottleneck import EntropyBottleneck
from terracodec.entropy.gaussian import GaussianConditional
from terracodec.latent_codecs.channel_groups import ChannelGroupsLatentCodec
from terracodec.latent_codecs.checkerboard import CheckerboardLatentCodec
from terracodec.latent_codecs.gaussian_conditional import GaussianConditionalLatentCodec
from terracodec.latent_codecs.hyper import HyperLatentCodec
from terracodec.latent_codecs.hyperprior import HyperpriorLatentCodec
from terracodec.latent_codecs.padding import crop_latent, pad_latent, padded_size, valid_cells
from terracodec.layers.blocks import AttentionBlock, ResidualBottleneckBlock
from terracodec.layers.conv import CheckerboardMaskedConv2d, conv, conv1x1, deconv
from terracodec.models.base import ImageCodec
from terracodec.registry import register_architecture
from terracodec.models.variable_rate import VariableRateMixin


def _rbs(n: int) -> list[nn.Module]:
    return [ResidualBottleneckBlock(n, n) for _ in range(3)]


def elic_transforms(bands: int, n: int, m: int) -> tuple[nn.Sequential, nn.Sequential]:
    """TEC-ELIC's analysis `g_a` (bands -> m channels at 1/16) and synthesis `g_s` (back); also
    the transforms of the temporal models built on them (`temporal.flextec_elic`)."""
    g_a = nn.Sequential(
        conv(bands, n, 5, 2), *_rbs(n),
        conv(n, n, 5, 2), *_rbs(n), AttentionBlock(n),
        conv(n, n, 5, 2), *_rbs(n),
        conv(n, m, 5, 2), AttentionBlock(m),
    )
    g_s = nn.Sequential(
        AttentionBlock(m), deconv(m, n, 5, 2), *_rbs(n),
        deconv(n, n, 5, 2), AttentionBlock(n), *_rbs(n),
        deconv(n, n, 5, 2), *_rbs(n),
        deconv(n, bands, 5, 2),
    )
    return g_a, g_s


def default_groups(m: int) -> list[int]:
    return [16, 16, 32, 64, m - 128]


@register_architecture("tec-elic")
class ElicCodec(VariableRateMixin, ImageCodec):
    """TEC-ELIC. Config: `bands`, `N`, `M`, optional `groups`, `context_widths`
    (channel-context hidden widths, default [224, 128]), `aggregation_width` (512), and optional
    `lambdas` / `quality` for variable rate (`terracodec.models.variable_rate`)."""

    #: Pixels pad to the transforms' stride; the latent pads to the hyperprior's grid for free
    #: (`latent_codecs.padding`). Streams of multiples of 64 px (made when this was 64) are the same.
    multiple = 16

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        c, n, m = self.bands, int(config["N"]), int(config["M"])
        groups = [int(g) for g in config.get("groups") or default_groups(m)]
        if len(groups) < 2 or min(groups) <= 0 or sum(groups) != m:
            raise ValueError(f"channel groups {groups} must be positive and add up to M={m}")
        ctx_w = [int(v) for v in config.get("context_widths", (224, 128))]
        agg_w = int(config.get("aggregation_width", 512))
        self.N, self.M, self.groups = n, m, groups
        self.config.update(groups=groups, context_widths=ctx_w, aggregation_width=agg_w)

        self.g_a, self.g_s = elic_transforms(c, n, m)
        h_a = nn.Sequential(
            conv(m, n, 3, 1), nn.ReLU(inplace=True),
            conv(n, n, 5, 2), nn.ReLU(inplace=True),
            conv(n, n, 5, 2),
        )
        h_s = nn.Sequential(
            deconv(n, n, 5, 2), nn.ReLU(inplace=True),
            deconv(n, n * 3 // 2, 5, 2), nn.ReLU(inplace=True),
            conv(n * 3 // 2, 2 * m, 3, 1),
        )
        # g_ch^(k): first group (+ most recent group) -> channel context of group k.
        channel_context = {
            f"y{k}": nn.Sequential(
                conv(groups[0] + (groups[k - 1] if k > 1 else 0), ctx_w[0], 5, 1),
                nn.ReLU(inplace=True),
                conv(ctx_w[0], ctx_w[1], 5, 1),
                nn.ReLU(inplace=True),
                conv(ctx_w[1], 2 * groups[k], 5, 1),
            )
            for k in range(1, len(groups))
        }
        per_group = {}
        for k, g in enumerate(groups):
            # Parameter aggregation: [spatial ctx, channel ctx, hyper params] -> (means, scales).
            in_ch = 2 * g + (2 * g if k > 0 else 0) + 2 * m
            aggregation = nn.Sequential(
                conv1x1(in_ch, 2 * m), nn.ReLU(inplace=True),
                conv1x1(2 * m, agg_w), nn.ReLU(inplace=True),
                conv1x1(agg_w, 2 * g),
            )
            per_group[f"y{k}"] = CheckerboardLatentCodec(
                y=GaussianConditionalLatentCodec(GaussianConditional(None), chunks=("means", "scales")),
                context_prediction=CheckerboardMaskedConv2d(g, 2 * g, kernel_size=5, stride=1, padding=2),
                entropy_parameters=aggregation,
            )
        self.latent_codec = HyperpriorLatentCodec(
            y=ChannelGroupsLatentCodec(groups, channel_context, per_group),
            hyper=HyperLatentCodec(EntropyBottleneck(n), h_a, h_s),
        )
        self.num_streams = self.latent_codec.num_streams
        self.init_gains(config, m)

    def forward(self, x: Tensor, quality_index: int | None = None) -> dict[str, Any]:
        """Training pass; `quality_index` (0-based) picks the gains of a variable-rate model."""
        out = self.latent_codec(self.gain_latent(self.g_a(x), quality_index))
        return {"x_hat": self.g_s(self.ungain_latent(out["y_hat"], quality_index)),
                "likelihoods": out["likelihoods"]}

    def analysis(self, x: Tensor) -> Tensor:
        return self.gain_latent(self.g_a(x))

    def synthesis(self, y_hat: Tensor) -> Tensor:
        return self.g_s(self.ungain_latent(y_hat))

    def compress_latents(self, y: Tensor) -> tuple[list[list[bytes]], dict[str, Tensor]]:
        padded, valid = pad_latent(y)
        out = self.latent_codec.compress(padded, coded=valid)
        y_hat = crop_latent(out["y_hat"], *y.shape[-2:])
        return out["strings"], {"y_hat": y_hat, "z_hat": out["z_hat"]}

    def decompress_latents(
        self, strings: list[list[bytes]], height: int, width: int
    ) -> dict[str, Tensor]:
        h, w = height // 16, width // 16
        ph, pw = padded_size(h, w)
        out = self.latent_codec.decompress(strings, (ph, pw), (ph // 4, pw // 4), coded=valid_cells(h, w))
        return {"y_hat": crop_latent(out["y_hat"], h, w), "z_hat": out["z_hat"]}
