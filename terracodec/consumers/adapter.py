"""A small learned map from a stream's synthesis latents to TerraFM's embedded patches, so that
TerraFM's transformer runs on a `.tec` file without the codec's synthesis transform and without
its own patch embedding:

    decode_latents(space="synthesis")  [M, h, w]   (the latent grid is TerraFM's 16-px patch grid)
      --LatentAdapter--> embedded patches [h * w, D] --TerraFM.tokens_from_patches--> [D, h, w]

An adapter is only valid for the codec model (and its weights) whose latents it was trained on,
and for the TerraFM (size, weights) whose patch embedding it imitates; its config records both,
and `check_adapter` refuses any other pairing. Files: `NAME.safetensors` (tensors) and
`NAME.json` (the config), the format of `terracodec.weights`, neither of which runs code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from terracodec.errors import InputError, ModelError
from terracodec.weights import FORMAT, FORMAT_VERSION, load_state, read_config, read_weights, stem

ARCH = "latent-adapter"
#: Config keys every adapter file must hold (`training` is optional).
KEYS = ("arch", "encoder", "terrafm_weights", "modality", "codec_model", "codec_weights_hash",
        "latent_channels", "dim", "width")
PATCH = 16


class LatentAdapter(nn.Module):
    """[B, M, h, w] synthesis latents -> [B, h * w, D] TerraFM embedded patches.

    Why this shape (about 0.8 M parameters at M = 96, width 192, D = 768):
    * a per-channel input scale (`latent_scale`, 1 / std of the training latents), so that
      Adam's step sizes suit any codec's latent magnitudes;
    * a 1x1 convolution: most of the map is per cell, since TerraFM's patch embedding sees only
      its own 16 x 16 px and a cell's latent holds most of what decodes there;
    * two 3x3 convolutions with GELU, residual: the synthesis transform's transposed
      convolutions spread each latent over the neighbouring cells, so a cell's decoded pixels
      depend on the latents around it (two 3x3 convolutions see 5 x 5 cells);
    * a linear 1x1 output without a LayerNorm: TerraFM's embedding ends with two linear layers
      after its LayerNorm, so its outputs are not normalised and a final norm would impose a
      scale the target does not have.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        missing = [k for k in KEYS if k not in config]
        if missing or config.get("arch") != ARCH:
            raise ModelError(f"not a latent adapter config (arch {config.get('arch')!r}, "
                             f"missing {', '.join(missing) or 'nothing'})")
        self.config, self.arch = dict(config), ARCH
        try:
            m, d, w = (int(config[k]) for k in ("latent_channels", "dim", "width"))
        except (TypeError, ValueError):
            raise ModelError("a latent adapter config's latent_channels, dim and width must be integers") from None
        self.latent_channels, self.dim = m, d
        self.register_buffer("latent_scale", torch.ones(m))
        self.stem = nn.Conv2d(m, w, 1)
        self.conv1 = nn.Conv2d(w, w, 3, padding=1, padding_mode="replicate")
        self.conv2 = nn.Conv2d(w, w, 3, padding=1, padding_mode="replicate")
        self.out = nn.Conv2d(w, d, 1)
        self.act = nn.GELU()

    def forward(self, y: Tensor) -> Tensor:
        h = self.act(self.stem(y * self.latent_scale[:, None, None]))
        h = h + self.conv2(self.act(self.conv1(h)))
        return self.out(self.act(h)).flatten(2).transpose(1, 2)


def new_adapter(*, encoder: str, terrafm_weights: str, modality: str, codec_model: str,
                codec_weights_hash: str, latent_channels: int, dim: int, width: int = 192) -> LatentAdapter:
    """A freshly initialised adapter (seed torch first for a reproducible one)."""
    return LatentAdapter(dict(arch=ARCH, encoder=encoder, terrafm_weights=terrafm_weights, modality=modality,
                              codec_model=codec_model, codec_weights_hash=codec_weights_hash,
                              latent_channels=latent_channels, dim=dim, width=width))


def terrafm_identity(weights: str | Path | None, seed: int | None) -> str:
    """What an adapter records of the TerraFM it imitates: "sha256:<hex>" of its checkpoint
    file, or "random seed N" for the random weights `build_terrafm` makes without one."""
    if weights is None:
        return f"random seed {seed or 0}"
    digest = hashlib.sha256()
    try:
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelError(f"cannot read TerraFM weights {weights}: {exc.strerror or exc}") from None
    return f"sha256:{digest.hexdigest()}"


def save_adapter(adapter: LatentAdapter, path: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `path.safetensors` and `path.json` together or not at all (temporary files, then
    renames)."""
    from safetensors.torch import save

    from terracodec.io.atomic import AtomicOutputs

    base = stem(path)
    weights, config = base.with_suffix(".safetensors"), base.with_suffix(".json")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in adapter.state_dict().items()}
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": adapter.config}
    with AtomicOutputs(overwrite=overwrite) as outputs:
        outputs.make_dir(base.parent if str(base.parent) else Path("."))
        temp_weights, temp_config = outputs.temp_for(weights), outputs.temp_for(config)
        temp_weights.write_bytes(save(tensors, metadata={"format": FORMAT, "arch": ARCH}))  # keeps its mode
        temp_config.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return weights, config


def load_adapter(path: str | Path) -> LatentAdapter:
    """The adapter in `path.safetensors` + `path.json` (eval mode), or a one-line ModelError."""
    config = read_config(path)
    if not isinstance(config, dict) or config.get("arch") != ARCH:
        arch = config.get("arch") if isinstance(config, dict) else None
        raise ModelError(f"{stem(path)}.json is not a latent adapter (arch {arch!r})")
    adapter = LatentAdapter(config)
    load_state(adapter, read_weights(path), str(stem(path).with_suffix(".safetensors")))
    return adapter.eval()


def check_adapter(adapter: LatentAdapter, stream_info: Mapping[str, Any], terrafm_identity: str,
                  encoder: str | None = None) -> None:
    """One-line ModelError unless `adapter` was trained on the latents of the stream's codec
    model and weights (`terracodec.info(stream)`) for this TerraFM (`terrafm_identity`)."""
    c = adapter.config
    if stream_info.get("model") != c["codec_model"]:
        raise ModelError(f"the adapter reads {c['codec_model']} latents; the stream is coded with "
                         f"{stream_info.get('model')}")
    if stream_info.get("weights_hash") != c["codec_weights_hash"]:
        raise ModelError(f"the adapter was trained on {c['codec_model']} weights "
                         f"{str(c['codec_weights_hash'])[:12]}; the stream's are "
                         f"{str(stream_info.get('weights_hash'))[:12]}")
    if encoder is not None and encoder != c["encoder"]:
        raise ModelError(f"the adapter feeds {c['encoder']}, not {encoder}")
    if terrafm_identity != c["terrafm_weights"]:
        raise ModelError(f"the adapter imitates {c['encoder']} with weights {c['terrafm_weights']}, "
                         f"not {terrafm_identity}")


def latent_tokens(adapter: LatentAdapter, terrafm: Any, y_hat: np.ndarray, *, window: int = 512) -> np.ndarray:
    """TerraFM's last-layer patch tokens [D, h, w] from one frame's synthesis latents `y_hat`
    [M, h, w]; cells whose latents are NaN (all-nodata tiles) give NaN tokens. Scenes wider
    than `window` px run in the same overlapping windows as the pixel path (`run_windows`)."""
    if y_hat.ndim != 3 or y_hat.shape[0] != adapter.latent_channels:
        raise InputError(f"the adapter reads latents [{adapter.latent_channels}, h, w], got shape {y_hat.shape}")
    if terrafm.dim != adapter.dim:
        raise ModelError(f"the adapter gives {adapter.dim}-dimensional patches; {terrafm.arch} takes {terrafm.dim}")
    empty = np.isnan(y_hat).any(axis=0)
    device = terrafm.cls_token.device
    y = torch.from_numpy(np.nan_to_num(y_hat.astype(np.float32), nan=0.0))[None].to(device)
    with torch.inference_mode():
        patches = adapter.to(device)(y)
        tokens = _run_on_cells(terrafm, patches, *y_hat.shape[1:], window)
    out = tokens[0].float().cpu().numpy()
    out[:, empty] = np.nan
    return out


def _run_on_cells(terrafm: Any, patches: Tensor, h: int, w: int, window: int) -> Tensor:
    """TerraFM's blocks over embedded patches [1, h * w, D] in `run_windows`' windows.

    `run_windows` places windows in pixels; it is given a pixel-sized map of cell ids (int32,
    4 bytes a pixel, a tenth of the pixel path's reflectance) and each window gathers the
    patches of the cells its pixels cover, so both paths see the same context per token."""
    from terracodec.consumers.windows import run_windows

    ids = torch.arange(h * w, dtype=torch.int32, device=patches.device).reshape(h, w)
    pixels = ids.repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)[None, None]

    def run(window_ids: Tensor) -> Tensor:
        cells = window_ids[0, 0, ::PATCH, ::PATCH]
        return terrafm.tokens_from_patches(patches[:, cells.flatten().long()], *cells.shape)

    return run_windows(run, pixels, window=window)


__all__ = ["ARCH", "LatentAdapter", "check_adapter", "latent_tokens", "load_adapter", "new_adapter",
           "save_adapter", "terrafm_identity"]
