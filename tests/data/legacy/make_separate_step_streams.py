"""Write the payload-version-1 TEC-TT fixtures: streams coded before a tile's step streams were
chained into one rANS stream (payload version 4), with the decoded latents beside each (.npz),
which tests/test_step_streams.py expects on every machine.

    tt_small_separate_steps_2frames.tec      `tec-tt-small`, the bundled sample's first 2 dates
    flextec_k3_separate_steps_2frames.tec    `tec-flextec` at k = 3, the published-architecture
                                             checkpoint of tests/fixtures/reference_flextec (random
                                             weights: the file does not depend on shipped weights)
    tt_small_cloudy_separate_steps_2frames.tec  `tec-tt-small`, a block of the second date marked
                                             cloudy (payload version 3 around version 1)

Run with a terracodec from before payload version 4 (commit 75ba032), writing here:

    git worktree add /tmp/old 75ba032
    PYTHONPATH=/tmp/old python tests/data/legacy/make_separate_step_streams.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import rasterio

import terracodec

HERE = Path(__file__).resolve().parent
FLEXTEC = HERE.parents[1] / "fixtures" / "reference_flextec"
SAMPLE = Path(terracodec.__file__).resolve().parent / "data" / "sample"
DATES = ("20150711", "20150731")


def _write(out: Path, stream: bytes, **kw) -> None:
    out.write_bytes(stream)
    lat = terracodec.decode_latents(out, **kw)
    np.savez_compressed(out.with_suffix(".npz"), y=lat.y_hat, f=lat.features)
    print(f"wrote {out} ({out.stat().st_size} bytes) and its latents")


def main() -> None:
    frames = [str(SAMPLE / f"S2L1C_{d}.tif") for d in DATES]
    _write(HERE / "tt_small_separate_steps_2frames.tec", terracodec.encode(frames, None, model="tec-tt-small"))
    from safetensors.torch import load_file

    dn = load_file(str(FLEXTEC / "data.safetensors"))["dn"].numpy().astype(np.uint16)
    weights = str(FLEXTEC / "flextec.pt")
    stream = terracodec.encode(dn, None, model="tec-flextec", weights=weights, quality=3)
    _write(HERE / "flextec_k3_separate_steps_2frames.tec", stream, weights=weights)
    with tempfile.TemporaryDirectory() as tmp, rasterio.open(frames[1]) as ds:
        mask = np.zeros((ds.height, ds.width), np.uint8)
        mask[8:72, 16:100] = 1
        profile = dict(ds.profile, count=1, dtype="uint8", nodata=None)
        with rasterio.open(Path(tmp) / "mask.tif", "w", **profile) as dst:
            dst.write(mask, 1)
        stream = terracodec.encode(frames, None, model="tec-tt-small", cloud_masks={1: str(Path(tmp) / "mask.tif")})
    _write(HERE / "tt_small_cloudy_separate_steps_2frames.tec", stream)


if __name__ == "__main__":
    main()
