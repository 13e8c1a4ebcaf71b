"""The pieces of `consumers.py` that do not touch the data sets: rate, JPEG2000 rate matching,
features (hand-crafted pooling, TerraFM tokens, per-cell grids) and the heads with their
cross-validation. Run as part of the benchmarks (this folder is on sys.path)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: OSCD task: a 16 x 16 cell is "changed" when at least this fraction of its pixels changed.
CHANGED_FRACTION = 0.05
CELL = 16
SEED = 0
#: The change CNN: channels after its 1x1 input layer, and training passes over the cities.
CNN_WIDTH, CNN_EPOCHS = 8, 20
#: JPEG2000 rate match: relative tolerance on the stream's bytes.
RATE_TOL = 0.04


# ---- rate ---------------------------------------------------------------------------------

def bpppb(nbytes: int, shape: Sequence[int]) -> float:
    """Bits per pixel per band: 8 * bytes / (T * C * H * W) of the coded array's shape."""
    return 8.0 * nbytes / math.prod(shape)


def match_rate(encode: Callable[[float], bytes], target: int, *, tol: float = RATE_TOL,
               tried: dict[float, int] | None = None, start: float = 50.0,
               max_trials: int = 12, lowest: float = 5.0, highest: float = 140.0) -> dict[str, Any]:
    """The JPEG2000 stream (`encode(level)`: OpenJPEG's fixed-quality PSNR target, bytes grow
    with it) whose size is within `tol` (relative) of `target` bytes.

    Secant steps on (level, log bytes), interpolation inside the bracket once there is one, and
    ~6 dB per doubling of the bytes when extrapolating; `tried` (level -> bytes, kept by the
    caller per image) warm-starts the next target of the same image. Returns the closest
    stream found: {"level", "data", "bytes", "ratio" (bytes / target), "trials"}.
    """
    tried = {} if tried is None else tried
    streams: dict[float, bytes] = {}

    def err(level: float) -> float:
        if level not in streams:
            streams[level] = encode(level)
            tried[level] = len(streams[level])
        return math.log(tried[level] / target)

    level = _guess(tried, target, start)
    for _ in range(max_trials):
        e = err(level)
        if abs(e) <= math.log1p(tol):
            break
        below = [lv for lv, n in tried.items() if n < target]
        above = [lv for lv, n in tried.items() if n > target]
        if below and above and max(below) < min(above):
            lo, hi = max(below), min(above)
            if hi - lo < 1e-3:
                break
            elo, ehi = math.log(tried[lo] / target), math.log(tried[hi] / target)
            nxt = lo + (hi - lo) * (-elo) / (ehi - elo)
            nxt = min(max(nxt, lo + 0.05 * (hi - lo)), hi - 0.05 * (hi - lo))
        else:
            step = -6.0 * e / math.log(2)
            nxt = level + math.copysign(min(max(abs(step), 1.0), 20.0), step)
        nxt = min(max(nxt, lowest), highest)
        if nxt == level:
            break
        level = nxt
    best = min(streams, key=lambda lv: abs(math.log(tried[lv] / target)))
    return {"level": best, "data": streams[best], "bytes": tried[best], "ratio": tried[best] / target,
            "trials": len(streams)}


def _guess(tried: dict[float, int], target: int, start: float) -> float:
    """A first level: interpolated between the tried levels that bracket `target`, else `start`."""
    pts = sorted(tried.items())
    for (l0, n0), (l1, n1) in zip(pts, pts[1:]):
        if n0 <= target <= n1 and n1 > n0:
            return l0 + (l1 - l0) * math.log(target / n0) / math.log(n1 / n0)
    if pts:  # outside the tried range: extrapolate from the nearest end
        lv, n = pts[0] if target < pts[0][1] else pts[-1]
        return lv + 6.0 * math.log2(target / n)
    return start


# ---- features -----------------------------------------------------------------------------

def band_stats(x: np.ndarray) -> np.ndarray:
    """Per-band mean and std over the patch (reflectance, DN / 10000): [..., C, H, W] -> [..., 2C]."""
    r = np.asarray(x, np.float64) / 10000.0
    return np.concatenate([r.mean(axis=(-2, -1)), r.std(axis=(-2, -1))], axis=-1)


def latent_stats(y: np.ndarray) -> np.ndarray:
    """Per-channel mean and std of latents over their grid: [..., M, h, w] -> [..., 2M]."""
    y = np.asarray(y, np.float64)
    return np.concatenate([y.mean(axis=(-2, -1)), y.std(axis=(-2, -1))], axis=-1)


def terrafm_order(band_names: Sequence[str]) -> list[int]:
    """Indices of TerraFM's 12 S2 bands (B01..B08, B8A, B09, B11, B12; no B10) in `band_names`."""
    from terracodec.consumers.terrafm import S2_BANDS

    return [list(band_names).index(b) for b in S2_BANDS]


def terrafm_features(model: Any, pixels: np.ndarray, band_names: Sequence[str], batch: int = 54) -> np.ndarray:
    """Mean-pooled last-layer patch tokens of TerraFM: uint16 DN [N, C, H, W] -> [N, D]."""
    import torch

    order = terrafm_order(band_names)
    out = []
    with torch.inference_mode():
        for i in range(0, len(pixels), batch):
            x = torch.from_numpy(pixels[i:i + batch][:, order].astype(np.float32) / 10000.0)
            out.append(model.patch_tokens(x, modality="s2_l1c").mean(dim=(2, 3)).double().numpy())
    return np.concatenate(out)


_ADAPTERS: dict[str, Any] = {}


def adapter_features(adapter_path: str, model: Any, weights: str | None, latents: list[np.ndarray],
                     stream: Path) -> np.ndarray:
    """Mean-pooled TerraFM tokens from latents through a latent adapter (checked once against
    `stream`'s codec and this TerraFM)."""
    import terracodec
    from terracodec.consumers.adapter import check_adapter, latent_tokens, load_adapter, terrafm_identity

    if adapter_path not in _ADAPTERS:
        _ADAPTERS[adapter_path] = load_adapter(adapter_path)
        check_adapter(_ADAPTERS[adapter_path], terracodec.info(str(stream)), terrafm_identity(weights, 0))
    adapter = _ADAPTERS[adapter_path]
    return np.stack([latent_tokens(adapter, model, y).reshape(model.dim, -1).mean(axis=1) for y in latents])


def _cells(x: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """[C, H, W] -> [C, nh, nw, 256]: the 16 x 16 cells of the top-left nh x nw grid."""
    c = x.shape[0]
    x = x[:, : nh * CELL, : nw * CELL].reshape(c, nh, CELL, nw, CELL)
    return x.transpose(0, 1, 3, 2, 4).reshape(c, nh, nw, CELL * CELL)


def cell_pixel_features(x1: np.ndarray, x2: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Per-cell features of a date pair (DN / 10000): per-band mean and std of date 1, date 2 and
    of the difference date 2 - date 1: [6C, nh, nw]."""
    a = _cells(np.asarray(x1, np.float32) / 10000.0, nh, nw)
    b = _cells(np.asarray(x2, np.float32) / 10000.0, nh, nw)
    d = b - a
    return np.concatenate([v for t in (a, b, d) for v in (t.mean(-1), t.std(-1))]).astype(np.float32)


def cell_latent_features(y1: np.ndarray, y2: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Per-cell latents of a date pair: date 1, date 2 and their difference: [3M, nh, nw]."""
    a, b = y1[:, :nh, :nw], y2[:, :nh, :nw]
    return np.concatenate([a, b, b - a]).astype(np.float32)


def cell_labels(mask: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """1 where at least `CHANGED_FRACTION` of a cell's pixels changed (OSCD mask: 2 = change)."""
    return (_cells((mask == 2)[None].astype(np.float32), nh, nw)[0].mean(-1) >= CHANGED_FRACTION).astype(np.int64)


# ---- heads --------------------------------------------------------------------------------

def classify_cv(features: np.ndarray, labels: Sequence[Any], folds: int = 5) -> dict[str, float]:
    """Mean accuracy of a linear probe (logistic regression) and of kNN (k = 5), both on
    standardised features, over a stratified `folds`-fold cross-validation (seed `SEED`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cv = StratifiedKFold(folds, shuffle=True, random_state=SEED)
    heads = {"linear": LogisticRegression(max_iter=3000), "knn": KNeighborsClassifier(5)}
    return {k: float(cross_val_score(make_pipeline(StandardScaler(), h), features, labels, cv=cv).mean())
            for k, h in heads.items()}


def change_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    return {"balanced_accuracy": float(balanced_accuracy_score(truth, pred)),
            "f1_changed": float(f1_score(truth, pred, pos_label=1, zero_division=0))}


def city_folds(n_cities: int, folds: int = 7) -> list[np.ndarray]:
    """City indices held out by each fold (cities dealt round-robin: 14 cities -> 7 pairs)."""
    return [np.arange(k, n_cities, folds) for k in range(min(folds, n_cities))]


def change_logreg(grids: list[np.ndarray], labels: list[np.ndarray], folds: list[np.ndarray]) -> dict[str, float]:
    """Class-balanced logistic regression (C = 0.1: it converges within its iterations) on the
    cells (standardised features), city-grouped cross-validation; scores over the pooled
    held-out cells."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = [g.reshape(g.shape[0], -1).T for g in grids]
    ys = [y.ravel() for y in labels]
    truth, pred = [], []
    for held in folds:
        train = [i for i in range(len(grids)) if i not in set(held)]
        head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=500))
        head.fit(np.concatenate([rows[i] for i in train]), np.concatenate([ys[i] for i in train]))
        for i in held:
            truth.append(ys[i])
            pred.append(head.predict(rows[i]))
    return change_scores(np.concatenate(truth), np.concatenate(pred))


def change_cnn(grids: list[np.ndarray], labels: list[np.ndarray], folds: list[np.ndarray],
               epochs: int = CNN_EPOCHS, width: int = CNN_WIDTH) -> dict[str, float]:
    """A tiny CNN over each city's cell grid: 1x1 conv (features -> `width`), two 3x3 convs,
    1x1 to a logit; Adam, `epochs` passes over the training cities (one city a step), loss
    weighted by the training cells' class balance; city-grouped cross-validation as above."""
    import torch
    from torch import nn

    truth, pred = [], []
    for k, held in enumerate(folds):
        torch.manual_seed(SEED + k)
        train = [i for i in range(len(grids)) if i not in set(held)]
        flat = np.concatenate([grids[i].reshape(grids[i].shape[0], -1) for i in train], axis=1)
        mean, std = flat.mean(1)[:, None, None], flat.std(1)[:, None, None] + 1e-6
        xs = [torch.from_numpy(((g - mean) / std).astype(np.float32))[None] for g in grids]
        ys = [torch.from_numpy(y.astype(np.float32))[None, None] for y in labels]
        pos = float(sum(labels[i].sum() for i in train))
        neg = float(sum(labels[i].size for i in train)) - pos
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(neg / max(pos, 1.0)))
        net = nn.Sequential(nn.Conv2d(grids[0].shape[0], width, 1), nn.ReLU(),
                            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        order = np.random.default_rng(SEED + k)
        for _ in range(epochs):
            for i in order.permutation(train):
                opt.zero_grad()
                loss_fn(net(xs[i]), ys[i]).backward()
                opt.step()
        with torch.no_grad():
            for i in held:
                truth.append(labels[i].ravel())
                pred.append((net(xs[i])[0, 0] > 0).numpy().ravel().astype(np.int64))
    return change_scores(np.concatenate(truth), np.concatenate(pred))


# ---- output -------------------------------------------------------------------------------

def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `path` through a temporary file beside it and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _f(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> list[str]:
    out = ["| path | quality | bpppb | " + " | ".join(c for c, _ in cols) + " |",
           "|---|---|---:|" + "---:|" * len(cols)]
    for r in rows:
        out.append(f"| {r['path']} | {r['quality'] or '-'} | {_f(r['bpppb'], 4)} | "
                   + " | ".join(_f(r.get(k)) for _, k in cols) + " |")
    return out


def _gaps(rows: list[dict[str, Any]], key: str, a: str, b: str) -> float:
    """Mean over the qualities of path `a`'s `key` minus path `b`'s."""
    by = {(r["path"], r["quality"]): r.get(key) for r in rows}
    diffs = [by[(a, q)] - by[(b, q)] for (p, q) in by if p == a and by.get((b, q)) is not None and by[(a, q)] is not None]
    return float(np.mean(diffs)) if diffs else float("nan")


def markdown(res: dict[str, Any]) -> str:
    env, eu, oc, s = res["environment"], res["eurosat"], res["oscd"], res["summary"]
    fm = env["terrafm"]
    fm_note = ("TerraFM was not run (`--no-terrafm`)." if fm is None else
               f"TerraFM columns: {fm['label']}, mean-pooled last-layer patch tokens (768); computed on "
               f"{', '.join(fm['paths'])} ({fm['variants']} variants of {eu['patches']} patches, "
               f"{fm['seconds']:.0f} s of inference in one-thread workers, "
               f"{fm['seconds'] / fm['variants']:.1f} s a variant); `--terrafm-paths` restricts them.")
    lines = [
        "# Analysis without full decoding, measured with real labels (`benchmarks/consumers.py`)", "",
        f"Regenerate with `{env['command']}` (this file, `results.json`, `consumers.png`). Run {env['date']} on "
        f"{env['cpu']}, {env['workers']} worker processes, {env['seconds']:.0f} s in all (EuroSAT {env['eurosat_seconds']:.0f} s), "
        f"{env['cpu_seconds']:.0f} CPU-seconds (the machine is shared: load average {env['load_average_end']:.1f} "
        f"at the end). Codec `{env['model']}`, qualities {env['qualities']}."
        + (" **Quick run (subset).**" if env["quick"] else ""), "",
        f"**Summary** (EuroSAT linear probe, hand-crafted features, at the middle quality {s['quality']}): "
        f"latents {s['latent_acc']:.3f}, decoded pixels {s['pixel_acc']:.3f}, JPEG2000 at the same bpppb "
        f"{s['j2k_acc_at_same_rate']:.3f}; original pixels {s['original_acc']:.3f}.", "",
        "Paths: `original` pixels; `decoded` = `terracodec.decode` of the `.tec` file; `latent` = "
        "`terracodec.decode_latents(path, space=\"synthesis\")`, no synthesis transform; `jpeg2000` = "
        "OpenJPEG (bench codec `jpeg2000`) with its fixed-quality target searched per image until the "
        f"stream is within {100 * RATE_TOL:.0f} % of the `.tec` file's bytes (header included); `jpeg2000_payload` (EuroSAT) = "
        "matched to the `.tec` tile payload without the stream header. bpppb = 8 bytes / (H W C T), "
        "averaged over EuroSAT patches, pooled over OSCD images; the latent path has the file's rate.", "",
        f"## EuroSAT-MS subset: {eu['patches']} patches, {len(eu['classes'])} classes, 5-fold stratified CV", "",
        "Accuracy (mean over folds). `stats`: per-band mean and std (26; latents: per-channel mean and std "
        f"of the {eu['latent_shape'][1]} x {eu['latent_shape'][2]} grid, {2 * eu['latent_shape'][0]}). "
        "`linear`: logistic regression, `knn`: k = 5, both on standardised features. " + fm_note, "",
        *_table(eu["rows"], [("stats linear", "stats_linear"), ("stats kNN", "stats_knn"),
                             ("TerraFM linear", "terrafm_linear"), ("TerraFM kNN", "terrafm_knn")]), "",
        "Decoded-pixel payload rates (tile bytes only): " + ", ".join(
            f"q{r['quality']} {r['payload_bpppb']:.4f}" for r in eu["rows"] if r.get("payload_bpppb")) + " bpppb. "
        "Worst JPEG2000 rate match (bytes / target) per quality: " + ", ".join(
            f"q{r['quality']} {r['rate_ratio_worst']:.3f}" for r in eu["rows"] if r["path"] == "jpeg2000") + ".", "",
        f"Mean over qualities, stats linear probe: latent - decoded {_gaps(eu['rows'], 'stats_linear', 'latent', 'decoded'):+.3f}, "
        f"decoded - jpeg2000 {_gaps(eu['rows'], 'stats_linear', 'decoded', 'jpeg2000'):+.3f}.", "",
        f"## OSCD change on the 16-px cell grid: {len(oc['cities'])} train cities, {oc['cells']} cells, "
        f"{oc['changed_cells']} changed ({100 * oc['changed_cells'] / oc['cells']:.1f} %)", "",
        "A cell is changed when >= 5 % of its pixels are. 7-fold city-grouped CV (cities dealt "
        "round-robin), scores over the pooled held-out cells. `logreg`: class-balanced logistic "
        f"regression (C = 0.1) on standardised cell features; `cnn`: 1x1 conv to {CNN_WIDTH} channels, two 3x3 convs, "
        f"1x1 to a logit, {CNN_EPOCHS} epochs of Adam, loss weighted by class balance. Pixel features: per-band "
        "mean and std of both dates and their difference (78); latent: both dates' latents and their "
        "difference (288). `tec-fp-s2l1c` was trained on these cities' images (not on their labels): "
        "its rate and fidelity here are not held-out numbers.", "",
        *_table(oc["rows"], [("logreg bal. acc", "logreg_balanced_accuracy"), ("logreg F1", "logreg_f1_changed"),
                             ("CNN bal. acc", "cnn_balanced_accuracy"), ("CNN F1", "cnn_f1_changed")]), "",
        "Worst JPEG2000 rate match (bytes / target) per quality: " + ", ".join(
            f"q{r['quality']} {r['rate_ratio_worst']:.3f}" for r in oc["rows"] if r["path"] == "jpeg2000") + ".", "",
        "![accuracy vs rate](consumers.png)", "",
    ]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    """EuroSAT linear-probe accuracy and OSCD change F1 against bpppb, one line per path, the
    original pixels as horizontal lines."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    panels = [(axes[0], res["eurosat"]["rows"], [("stats_linear", "-", "stats"), ("terrafm_linear", "--", "TerraFM")],
               "EuroSAT linear probe accuracy"),
              (axes[1], res["oscd"]["rows"], [("logreg_f1_changed", "-", "logreg"), ("cnn_f1_changed", "--", "CNN")],
               "OSCD change F1 (16-px cells)")]
    colours = {"decoded": "C0", "latent": "C1", "jpeg2000": "C2", "jpeg2000_payload": "C4"}
    for ax, rows, keys, title in panels:
        for key, style, head in keys:
            orig = next(r for r in rows if r["path"] == "original").get(key)
            if orig is not None:
                ax.axhline(orig, color="black", linestyle=style, linewidth=1, label=f"original pixels ({head})")
            for p, c in colours.items():
                pts = sorted((r["bpppb"], r[key]) for r in rows if r["path"] == p and r.get(key) is not None)
                if pts:
                    ax.plot(*zip(*pts), style, color=c, marker="o", markersize=4, label=f"{p} ({head})")
        ax.set_xscale("log")
        ax.set_xlabel("rate (bits per pixel per band, log scale)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def write_outputs(out: Path, res: dict[str, Any]) -> None:
    """results.json, RESULTS.md and consumers.png under `out`, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.json", json.dumps(res, indent=1) + "\n")
    plot(res, out / "consumers.png")
    write_atomic(out / "RESULTS.md", markdown(res))
