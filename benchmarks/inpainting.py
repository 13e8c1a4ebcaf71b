"""Cloud filling by the temporal model against simple baselines, and the bits it saves.

Held-out real L1C series (the model, `tec-tt-s2l1c`, the shipped 13-band temporal model, never saw
them; `--model tec-tt-small` runs the earlier token-based TT): the
eo-learn 5-date series (its clear frames after the first as targets: 2015-08-30 and 09-09;
07-31 and 08-20 are hazy and cloudy, 86 % and 100 % by `--cloud-mask auto`'s test) and the 10
OSCD test cities (256 px centre crops, the second date as target). Each clear target frame gets
an artificial cloud: a block
(the centre third of the frame) or a real cloud shape (Sen2Cor SCL classes 8-10 of cloudy
WorldCereal dates, site 00002806639B424A, upsampled onto the frame). The series up to the
target is coded through `terracodec.encode(..., cloud_masks={t: mask}, cloud_fill=MODE)`
(whole `.tec` streams, what `tec encode --cloud-mask` does) in both modes and without mask.

Measured on the filled pixels (the `<frame>.filled.tif` cells: 16 px blocks more than half
under the mask), PSNR-10k against the true frame, for the codec (decoded frame) and for the
baselines, which see the *original* clear frames (an advantage the codec does not have: its
context is the decoded previous frames, cloudy ones included): the previous clear frame, the
temporal mean of the other clear frames, linear interpolation in time between the clear frames
before and after (the previous one at the series' end). Bits: frame t's bytes with the mask
against without it. Real cloudy frames: the eo-learn series coded with `--cloud-mask auto`
against without masks (bits of the cloudy frames).

    python benchmarks/inpainting.py        # -> benchmarks/results/inpainting.md (+ pictures)

Last line: `summary: psnr_gain_vs_best_baseline_db=<x> bits_saved_pct=<x>` (pooled over cases; the
better mode by PSNR, its bits saved).
"""

from __future__ import annotations

import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import rasterio
from _common import RESULTS, SHARED_DATA, cpu_name, eolearn_series, oscd_test_series, write_report

import terracodec
from terracodec.bands import S2_L1C_BANDS
from terracodec.temporal.clouds import cell_pixels, cloudy_cells

MODEL = "tec-tt-s2l1c"
MODES = ("interleave", "propagate")
SHAPE_SITE = SHARED_DATA / "worldcereal_s2l2a_dense_ts" / "00002806639B424A"
SHAPE_DATES = (1, 64, 94, 95, 105)  # 29-58 % cloud (SCL 8, 9, 10)


def block_mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 1
    return m


def shape_mask(h: int, w: int, k: int) -> np.ndarray:
    with rasterio.open(SHAPE_SITE / "s2_scl_20m.tif") as ds:
        scl = ds.read(SHAPE_DATES[k % len(SHAPE_DATES)] + 1)
    cloud = np.isin(scl, (8, 9, 10)).astype(np.uint8)
    reps = (-(-h // (cloud.shape[0] * 4)), -(-w // (cloud.shape[1] * 4)))
    big = np.kron(cloud, np.ones((4, 4), np.uint8))  # 20 m cells onto ~5 m: shapes of 128 px
    return np.tile(big, reps)[:h, :w]


def psnr10k(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1e8 / max(mse, 1e-12))


def code(series: np.ndarray, t: int, mask: np.ndarray | None, mode: str) -> tuple[int, np.ndarray]:
    """(frame t's bytes, decoded frame t) of frames 0..t coded as one stream."""
    kw = {"cloud_masks": {t: mask}, "cloud_fill": mode} if mask is not None else {}
    blob = terracodec.encode(series[: t + 1], model=MODEL, band_names=list(S2_L1C_BANDS), baseline_offset=False, **kw)
    return terracodec.info(blob)["frame_info"][t]["bytes"], np.asarray(terracodec.decode(blob, frames=[t]).pixels[0])


def baselines(series: np.ndarray, t: int, days: list[float], clear: list[int]) -> dict[str, np.ndarray]:
    """The baselines' guesses of frame t from the other clear frames."""
    before = [i for i in clear if i < t]
    after = [i for i in clear if i > t]
    p = before[-1]
    prev = series[p]
    if after:
        n = after[0]
        a = (days[t] - days[p]) / (days[n] - days[p])
        interp = (1 - a) * prev.astype(np.float64) + a * series[n]
    else:
        interp = prev
    others = [i for i in clear if i != t]
    return {"previous frame": prev, "temporal mean": series[others].astype(np.float64).mean(0),
            "linear interpolation": interp}


def picture(path: Path, true: np.ndarray, mask: np.ndarray, filled: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def rgb(x: np.ndarray) -> np.ndarray:
        return np.clip(x[[3, 2, 1]].transpose(1, 2, 0) / 3000.0, 0, 1)

    masked = rgb(true).copy()
    masked[mask > 0] = 1.0
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for ax, img, title in zip(axes, (rgb(true), masked, rgb(filled)), ("true", "masked", "filled (interleave)")):
        ax.imshow(img)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


EO_DAYS = [0.0, 20.0, 40.0, 50.0, 60.0]  # 2015-07-11, 07-31, 08-20, 08-30, 09-09
EO_CLEAR = [0, 3, 4]


def cases() -> list[tuple[str, np.ndarray, list[float], int, list[int]]]:
    """(name, series, days, target frame, clear frames)."""
    eo = eolearn_series(S2_L1C_BANDS)[0].pixels
    out = [(f"eolearn {t}", eo, EO_DAYS, t, EO_CLEAR) for t in EO_CLEAR[1:]]
    for s in oscd_test_series(S2_L1C_BANDS, 256):
        out.append((f"oscd {s.name}", s.pixels, [0.0, 1.0], 1, [0, 1]))
    return out


def real_clouds() -> list[str]:
    """The eo-learn series with `--cloud-mask auto` against without: bytes of the cloudy frames."""
    eo = eolearn_series(S2_L1C_BANDS)[0].pixels
    kw = dict(model=MODEL, band_names=list(S2_L1C_BANDS), baseline_offset=False)
    plain = terracodec.info(terracodec.encode(eo, **kw))["frame_info"]
    lines = ["", "Real cloudy frames (eo-learn, `--cloud-mask auto`, both modes; bytes per frame):", "",
             "| mode | " + " | ".join(f["name"] for f in plain) + " | cloudy frames: bits saved |", "|---|" + "---:|" * (len(plain) + 1)]
    lines.append("| no mask | " + " | ".join(str(f["bytes"]) for f in plain) + " | - |")
    for mode in MODES:
        info = terracodec.info(terracodec.encode(eo, cloud_masks="auto", cloud_fill=mode, **kw))["frame_info"]
        cloudy = [i for i, f in enumerate(info) if f["filled"]]
        saved = 100 * (1 - sum(info[i]["bytes"] for i in cloudy) / max(1, sum(plain[i]["bytes"] for i in cloudy)))
        lines.append(f"| {mode} | " + " | ".join(f"{f['bytes']} ({100 * f['filled']:.0f} % filled)" for f in info)
                     + f" | {saved:.1f} % |")
    return lines


def main() -> None:
    global MODEL
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=MODEL, help="a 13-band temporal model (default %(default)s)")
    ap.add_argument("--out", default="inpainting", help="results stem under benchmarks/results")
    args = ap.parse_args()
    MODEL = args.model
    warnings.simplefilter("ignore")
    start = time.time()
    pics = RESULTS / args.out
    pics.mkdir(parents=True, exist_ok=True)
    rows, pooled = [], {}
    for n, (name, series, days, t, clear) in enumerate(cases()):
        h, w = series.shape[-2:]
        for kind, mask in (("block", block_mask(h, w)), ("cloud shape", shape_mask(h, w, n))):
            cells = cell_pixels(cloudy_cells(mask), h, w)
            if not cells.any():
                continue
            true = series[t]
            full_bytes, _ = code(series, t, None, "interleave")
            result = {"case": name, "mask": kind, "filled_px": int(cells.sum()), "full_bytes": full_bytes}
            for mode in MODES:
                b, dec = code(series, t, mask, mode)
                result[mode] = (psnr10k(dec[:, cells], true[:, cells]), b)
                pooled.setdefault(mode, []).append((np.mean((dec[:, cells].astype(float) - true[:, cells]) ** 2), b, full_bytes))
                if mode == "interleave" and n < 3:
                    picture(pics / f"{name.replace(' ', '_').replace('=', '')}_{kind.replace(' ', '_')}.png", true, mask, dec)
            for base, guess in baselines(series, t, days, clear).items():
                result[base] = psnr10k(guess[:, cells], true[:, cells])
                pooled.setdefault(base, []).append((np.mean((guess[:, cells] - true[:, cells].astype(float)) ** 2), 0, 0))
            rows.append(result)
            print(name, kind, {k: v for k, v in result.items() if k not in ("case", "mask")}, flush=True)
    def pooled_psnr(key: str) -> float:
        return 10 * np.log10(1e8 / np.mean([m for m, _, _ in pooled[key]]))

    def saved(key: str) -> float:
        return 100 * (1 - sum(b for _, b, _ in pooled[key]) / sum(f for _, _, f in pooled[key]))

    bases = ["previous frame", "temporal mean", "linear interpolation"]
    best_mode = max(MODES, key=pooled_psnr)
    best_base = max(bases, key=pooled_psnr)
    lines = [
        "# Cloud filling (cloud-aware coding) against baselines",
        "",
        f"`python benchmarks/inpainting.py`; {date.today()}, {cpu_name()}, {time.time() - start:.0f} s. "
        f"Model `{MODEL}` (13-band L1C; the test cities and eo-learn are held out); method in the script's docstring. "
        "PSNR-10k on the filled pixels only; baselines see the original other frames.",
        "",
        "| case | mask | filled px | interleave PSNR / bytes | propagate PSNR / bytes | frame unmasked bytes | "
        + " | ".join(bases) + " |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(bases),
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['mask']} | {r['filled_px']} | {r['interleave'][0]:.2f} / {r['interleave'][1]} | "
                     f"{r['propagate'][0]:.2f} / {r['propagate'][1]} | {r['full_bytes']} | "
                     + " | ".join(f"{r[b]:.2f}" for b in bases) + " |")
    lines += ["", "Pooled over the cases (MSE pooled, bits summed):", ""]
    lines += [f"* {k}: PSNR-10k {pooled_psnr(k):.2f} dB" + (f", bits saved {saved(k):.1f} %" if k in MODES else "")
              for k in [*MODES, *bases]]
    lines += real_clouds()
    lines += ["", "Real cloudy L2A frames (WorldCereal, fordead) with the L2A temporal model `tec-tt-s2l2a`: "
              "`benchmarks/cloud_coding_l2a.py` (`benchmarks/results/cloud_coding_l2a.md`).", "",
              "Pictures (true, masked, filled): " + ", ".join(f"`{p.relative_to(RESULTS)}`" for p in sorted(pics.glob('*.png')))]
    gain = pooled_psnr(best_mode) - pooled_psnr(best_base)
    write_report(args.out, lines,
                 f"summary: psnr_gain_vs_best_baseline_db={gain:.2f} bits_saved_pct={saved(best_mode):.1f}")


if __name__ == "__main__":
    main()
