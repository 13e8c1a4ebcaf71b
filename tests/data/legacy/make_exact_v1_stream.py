"""Write tt_small_exact_v1_2frames.tec: the bundled sample's first two dates coded by
`tec-tt-small` with the `exact-v1` entropy path (what streams were coded with before `int8-v2`),
and the decoded latents beside it (.npz), which tests/test_integer_tt.py expects on every machine.

    python tests/data/legacy/make_exact_v1_stream.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import terracodec
import terracodec.temporal.entropy_paths as entropy_paths

HERE = Path(__file__).resolve().parent
SAMPLE = Path(terracodec.__file__).resolve().parent / "data" / "sample"


def main() -> None:
    out = HERE / "tt_small_exact_v1_2frames.tec"
    entropy_paths.CURRENT_PATH = "exact-v1"
    frames = [str(SAMPLE / f"S2L1C_{d}.tif") for d in ("20150711", "20150731")]
    out.write_bytes(terracodec.encode(frames, None, model="tec-tt-small"))
    lat = terracodec.decode_latents(out)
    np.savez(out.with_suffix(".npz"), y=lat.y_hat, f=lat.features)
    print(f"wrote {out} ({out.stat().st_size} bytes) and its latents")


if __name__ == "__main__":
    main()
