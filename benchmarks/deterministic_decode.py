"""What deterministic decoding costs: one intra-op thread per tile, against torch's threads.

Decoded pixels must not depend on the thread count (issue 13, item 9). terracodec decodes tiles
as tasks with the exact entropy networks on the task's thread budget and the float synthesis on
a thread count fixed by the stream's shape (one thread per tile when several run side by side,
2 for a stream of one tile; `terracodec.parallel`); before, tiles were decoded one after the
other, every operator on torch's intra-op threads, and oneDNN's 1x1 and transposed
convolutions summed in another order with another thread count. This script measures both in one run, interleaved, on the
same streams (real Sentinel-2 pixels of the sen1floods11 chip or, without ../shared, the
bundled sample, mirrored to the scene size), 2 threads:

* `intra-op`: the former path, per tile `decode_latents_batch` then `synthesis` on torch's
  threads, tiles in order (the container reads and denormalisation are left out of both:
  they are the same code);
* `deterministic`: `ImageCodec.decode_tiles` on `terracodec.parallel` tasks, as the API runs it.

The thread spread is measured on the first tile alone (a one-tile job: 2 float threads).

It also decodes each stream's first tile with 1 and 2 threads both ways and reports the largest
difference. `python benchmarks/deterministic_decode.py` -> results/deterministic_decode.md;
last line `summary: ...cost_pct...` (positive: deterministic is slower).
"""

from __future__ import annotations

import json
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import rasterio
import torch
from _common import SHARED_DATA, cpu_name

from terracodec.bands import S2_L1C_BANDS
from terracodec.zoo import load_model
from terracodec.normalization import Normalization
from terracodec.parallel import float_threads_for, run_tasks
from terracodec.tiling import pad_tile, tile_grid

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE = Path(__file__).resolve().parents[1] / "terracodec" / "data" / "sample" / "S2L1C_20150711.tif"
SCENES = [("one 512 px tile", 512, 512), ("1024 x 1024, 4 tiles", 1024, 1024), ("2048 x 2048, 16 tiles", 2048, 2048)]
REPEATS = 5


def scene(height: int, width: int) -> np.ndarray:
    src = SHARED_DATA / "sen1floods11_sample" / "Spain_7370579_S2Hand.tif"
    with rasterio.open(src if src.exists() else SAMPLE) as ds:
        px = ds.read().astype(np.float64)
    reps = (1, -(-height // px.shape[1]), -(-width // px.shape[2]))
    return np.tile(px, reps)[:, :height, :width]


def tiles_of(model, x: np.ndarray) -> tuple[list, list[bytes]]:
    tiles = tile_grid(x.shape[1], x.shape[2], 512, model.multiple)
    codes = []
    for t in tiles:
        part = x[:, t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width]
        with torch.inference_mode():
            codes.append(model.encode_tile(torch.from_numpy(pad_tile(part, t)).float()))
    return tiles, codes


def intra_op(model, tiles, codes) -> list[torch.Tensor]:
    out = []
    with torch.inference_mode():
        for t, code in zip(tiles, codes):
            lat = model.decode_latents_batch([code], t.padded_height, t.padded_width)
            out.append(model.synthesis(lat["y_hat"].float()))
    return out


def deterministic(model, tiles, codes) -> list[torch.Tensor]:
    with torch.inference_mode():
        return run_tasks([partial(model.decode_tiles, [c], t.padded_height, t.padded_width)
                          for t, c in zip(tiles, codes)], float_threads=float_threads_for(len(tiles)))


def thread_spread(fn, model, tiles, codes) -> float:
    outs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        outs.append(fn(model, tiles[:1], codes[:1])[0])
    torch.set_num_threads(2)
    return float((outs[0] - outs[1]).abs().max())


def main() -> None:
    torch.set_num_threads(2)
    rows = []
    for name in ("tec-fp-s2l1c", "tec-elic-s2l2a"):
        model = load_model(name, 3).eval()
        norm = Normalization.from_config(model.config["normalization"])
        for label, h, w in SCENES:
            x = scene(h, w)
            if model.bands == 12:
                x = np.delete(x, S2_L1C_BANDS.index("B10"), axis=0)
            tiles, codes = tiles_of(model, norm.normalize(x))
            times = {"intra-op": [], "deterministic": []}
            for _ in range(REPEATS):
                for key, fn in (("intra-op", intra_op), ("deterministic", deterministic)):
                    start = time.perf_counter()
                    fn(model, tiles, codes)
                    times[key].append(time.perf_counter() - start)
            a, b = statistics.median(times["intra-op"]), statistics.median(times["deterministic"])
            row = {"model": name, "scene": label, "tiles": len(tiles), "intra_op_s": a,
                   "deterministic_s": b, "cost_pct": 100 * (b / a - 1),
                   "spread_intra_op": thread_spread(intra_op, model, tiles, codes),
                   "spread_deterministic": thread_spread(deterministic, model, tiles, codes)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deterministic_decode.json").write_text(json.dumps({"cpu": cpu_name(), "threads": 2, "rows": rows}, indent=1))
    lines = ["# Deterministic decoding: cost against torch's intra-op threads (`benchmarks/deterministic_decode.py`)",
             "", f"CPU: {cpu_name()}, 2 threads, median of {REPEATS} interleaved runs; decode of the model "
             "payloads only (entropy decoding + synthesis). Spread: largest difference (normalised units) "
             "between a tile decoded with 1 and with 2 threads.", "",
             "| model | scene | tiles | intra-op s | deterministic s | cost | spread intra-op | spread deterministic |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['scene']} | {r['tiles']} | {r['intra_op_s']:.3f} | "
                     f"{r['deterministic_s']:.3f} | {r['cost_pct']:+.0f} % | {r['spread_intra_op']:.1e} | "
                     f"{r['spread_deterministic']:.1e} |")
    single = {r["model"]: r["cost_pct"] for r in rows if r["tiles"] == 1}
    scenes = {r["model"]: r["cost_pct"] for r in rows if r["tiles"] > 1}
    summary = ("summary: " + " ".join(f"single_tile_cost_pct_{m.split('-')[1]}={v:.0f}" for m, v in single.items())
               + " " + " ".join(f"scene_cost_pct_{r['model'].split('-')[1]}_{r['tiles']}tiles={r['cost_pct']:.0f}"
                                for r in rows if r["tiles"] > 1)
               + f" max_spread_deterministic={max(r['spread_deterministic'] for r in rows):.1e}")
    lines += ["", summary]
    (RESULTS / "deterministic_decode.md").write_text("\n".join(lines) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
