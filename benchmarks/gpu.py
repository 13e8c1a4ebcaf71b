"""On a CUDA GPU: do streams decode bit-exactly across CPU and GPU, and how many frames per second?

Two parts, one run (both on the same machine, so CPU and GPU see the same weights and input):

* **Determinism.** Each shipped image model (quality 3) and the shipped small TEC-TT code the
  same real tiles on the CPU and on the GPU. Reported: whether the two devices write the same
  bytes, whether each device decodes the other's stream to the same quantised latents (or
  raises, or decodes something else), and, for the TT, whether the GPU decodes its own stream
  when the tiles are split differently at decode (one batch of all tiles vs one tile at a time).
* **Speed.** Frames per second of encode and decode at 256x256 and 1024x1024 (one tile each)
  for the TEC-TT at the published size (d_model 768, 225 M parameters, random weights from a
  fixed seed, latents widened as in `tests/fixtures/make_tt_fixtures.py`) and the shipped small
  TT, on 3-frame sequences (frames >= 1 pay both context encoders: the steady state), and for
  the shipped image codecs. Times are host clocks around synchronised calls; each timed call
  comes after a warm-up of the same shape.

Input: real OSCD test-city crops (evaluation cities, never trained on). The GPU machine cannot
reach `../shared`, so the crops travel as one file made beforehand where the data is:

    python benchmarks/gpu.py --make-inputs .devdata/gpu_inputs.safetensors   # here
    python benchmarks/gpu.py --inputs .devdata/gpu_inputs.safetensors --out DIR   # on the GPU

`--make-inputs` also codes the crops with every shipped model on this machine's CPU; the GPU
machine decodes those streams on its CPU and GPU (another CPU family and torch build: the
cross-machine check). Writes DIR/gpu.json and DIR/gpu.md (copy them to benchmarks/results/).
The last printed line is `summary: image_cross_device_exact=<bool> tt_cross_device_exact=<bool>
image_cross_machine_exact=<bool> tt_cross_machine_exact=<bool> tt_fps_256=<enc>/<dec>
tt_fps_1024=<enc>/<dec>` (the published-size TT's steady-state frames per second).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
IMAGE_MODELS = ("tec-fp-s2l1c", "tec-fp-s2l2a", "tec-elic-s2l2a")
#: The second device ("cuda"; `--device cpu` runs the whole script on the CPU, a dry run of it).
DEVICE = "cuda"
L2A_DROP = 10  # index of B10 in the L1C order: the L2A models take the other 12 bands


def make_inputs(path: Path) -> None:
    """Central 256 px crops of two OSCD test cities, both dates, L1C DN `[T, B, 13, 256, 256]`."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import oscd_test_series
    from safetensors.torch import save_file

    from terracodec.bands import S2_L1C_BANDS

    samples = {s.name: s for s in oscd_test_series(S2_L1C_BANDS, 256)}
    cities = ["milano", "rio"]
    dn = torch.stack([torch.from_numpy(samples[c].pixels.astype("int32")) for c in cities], 1)
    tensors = {"dn": dn.to(torch.int16), **foreign_streams(dn)}
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import cpu_name

    meta = {"cities": ",".join(cities), "coded_on": f"{cpu_name()}, torch {torch.__version__}"}
    save_file(tensors, str(path), metadata=meta)
    print(f"wrote {path}: {tuple(dn.shape)} DN of {', '.join(cities)}, and their streams coded here")


def _pack(streams: list[bytes]) -> dict[str, torch.Tensor]:
    return {"bytes": torch.frombuffer(bytearray(b"".join(streams)), dtype=torch.uint8),
            "lengths": torch.tensor([len(b) for b in streams], dtype=torch.int64)}


def _unpack(tensors: dict, prefix: str) -> list[bytes]:
    data, lengths = tensors[f"{prefix}.bytes"].numpy().tobytes(), tensors[f"{prefix}.lengths"].tolist()
    offsets = [sum(lengths[:i]) for i in range(len(lengths) + 1)]
    return [data[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]


def foreign_streams(dn: torch.Tensor) -> dict[str, torch.Tensor]:
    """Streams of the crops coded on this machine's CPU, with their decoded latents, for a
    check on another machine (another CPU family, torch version and a GPU)."""
    from terracodec.zoo import load_model

    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in IMAGE_MODELS:
            model = load_model(name, 3)
            x = normalized(model, bands_for(model, dn.flatten(0, 1).float()))
            streams = model.encode_tiles(x)
            out.update({f"{name}.{k}": v for k, v in _pack(streams).items()})
            out[f"{name}.y_hat"] = model.decode_latents_batch(streams, 256, 256)["y_hat"].contiguous()
        tt = load_model("tec-tt-small")
        payloads, coded = tt.encode_sequence(normalized(tt, dn.float()))
        out.update({f"tec-tt-small.{k}": v for k, v in _pack([p for f in payloads for p in f]).items()})
        out["tec-tt-small.y_hat"] = torch.stack(coded).contiguous()
    return out


def foreign_check(tensors: dict) -> dict:
    """Decode the streams coded on another machine here, on the CPU and on `DEVICE`."""
    from terracodec.zoo import load_model

    out = {}
    with torch.no_grad():
        for name in IMAGE_MODELS:
            streams, want = _unpack(tensors, name), tensors[f"{name}.y_hat"]
            for dev in ("cpu", DEVICE):
                model = load_model(name, 3).to(dev)
                model.update(force=True)
                out[f"{name} on {dev}"] = _report(lambda: _image_latents(model, streams, 256, 256),
                                                  lambda: [want])
        want = tensors["tec-tt-small.y_hat"]  # [T, B, C, h, w]
        flat = _unpack(tensors, "tec-tt-small")
        tiles = want.shape[1]
        payloads = [flat[t * tiles : (t + 1) * tiles] for t in range(want.shape[0])]
        for dev in ("cpu", DEVICE):
            model = load_model("tec-tt-small").to(dev)
            model.update(force=True)
            out[f"tec-tt-small on {dev}"] = _report(lambda: _tt_latents(model, payloads, 256, 256),
                                                    lambda: list(want))
    return out


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def mosaic(frames: torch.Tensor, size: int) -> torch.Tensor:
    """`[T, B, C, 256, 256]` -> `[T, 1, C, size, size]`: the tiles and their flips side by side
    (real texture at any size)."""
    t, b, c, h, w = frames.shape
    reps = size // h
    rows = []
    for i in range(reps):
        row = []
        for j in range(reps):
            tile = frames[:, (i + j) % b]
            if (i + j) % 2:
                tile = tile.flip(-1)
            if i % 2:
                tile = tile.flip(-2)
            row.append(tile)
        rows.append(torch.cat(row, -1))
    return torch.cat(rows, -2)[:, None]


def normalized(model: Any, dn: torch.Tensor) -> torch.Tensor:
    """DN `[..., C, H, W]` in the model's bands -> its normalised input (float32)."""
    from terracodec.normalization import Normalization

    norm = Normalization.from_config(model.config["normalization"])
    flat = dn.reshape(-1, *dn.shape[-3:]).to(torch.float64)
    return torch.stack([norm.normalize(f) for f in flat]).float().reshape(dn.shape)


def bands_for(model: Any, dn_l1c: torch.Tensor) -> torch.Tensor:
    if model.bands == 13:
        return dn_l1c
    keep = [i for i in range(13) if i != L2A_DROP]
    return dn_l1c[..., keep, :, :]


# ----------------------------------------------------------------------------- determinism
def image_determinism(name: str, dn: torch.Tensor) -> dict:
    from terracodec.zoo import load_model

    cpu = load_model(name, 3)
    gpu = load_model(name, 3).to(DEVICE)
    gpu.update(force=True)
    x = normalized(cpu, bands_for(cpu, dn.flatten(0, 1).float()))  # all tiles, both dates
    h, w = x.shape[-2:]
    with torch.no_grad():
        s_cpu = cpu.encode_tiles(x)
        s_gpu = gpu.encode_tiles(x.to(DEVICE))
        out = {"tiles": x.shape[0], "same_bytes": s_cpu == s_gpu, "bytes_cpu": sum(map(len, s_cpu)),
               "bytes_gpu": sum(map(len, s_gpu))}

        out["cpu_stream_on_gpu"] = _report(lambda: _image_latents(gpu, s_cpu, h, w),
                                           lambda: _image_latents(cpu, s_cpu, h, w))
        out["gpu_stream_on_cpu"] = _report(lambda: _image_latents(cpu, s_gpu, h, w),
                                           lambda: _image_latents(gpu, s_gpu, h, w))
        x_cpu = cpu.decode_tiles(s_cpu, h, w)
        x_gpu = gpu.decode_tiles(s_cpu, h, w).cpu()
        out["max_abs_x_hat_cpu_vs_gpu"] = float((x_cpu - x_gpu).abs().max())
    return out


def _report(decode: Callable[[], list[torch.Tensor]], reference: Callable[[], list[torch.Tensor]]) -> str:
    """Whether `decode()` gives the latents that `reference()` gives, raises, or gives others
    (errors are reported, not raised: the other checks still run)."""
    try:
        want = reference()
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return f"(reference error: {type(exc).__name__}: {str(exc)[:80]})"
    try:
        got = decode()
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return f"error: {type(exc).__name__}: {str(exc)[:80]}"
    diff = sum(int((a != b).sum()) for a, b in zip(got, want))
    return "same latents" if diff == 0 else f"DIFFERENT latents ({diff} values)"


def _image_latents(model: Any, streams: list[bytes], h: int, w: int) -> list[torch.Tensor]:
    return [model.decode_latents_batch(streams, h, w)["y_hat"].cpu()]


def _tt_latents(model: Any, payloads, h: int, w: int, split: bool = False) -> list[torch.Tensor]:
    """Each frame's latents of `payloads` decoded as one batch of tiles, or (`split`) each tile as
    its own sequence."""
    if not split:
        return model.decode_sequence_latents(payloads, h, w)
    tiles = [model.decode_sequence_latents([[p[i]] for p in payloads], h, w) for i in range(len(payloads[0]))]
    return [torch.cat([tile[t] for tile in tiles]) for t in range(len(payloads))]


def tt_determinism(dn: torch.Tensor) -> dict:
    from terracodec.zoo import load_model

    cpu = load_model("tec-tt-small")
    gpu = load_model("tec-tt-small").to(DEVICE)
    gpu.update(force=True)
    x = normalized(cpu, dn.float())  # [T, B, C, H, W]
    h, w = x.shape[-2:]
    with torch.no_grad():
        p_cpu, y_cpu = cpu.encode_sequence(x)
        p_gpu, y_gpu = gpu.encode_sequence(x.to(DEVICE))
        return {
            "frames": x.shape[0], "tiles": x.shape[1],
            "same_bytes": p_cpu == p_gpu,
            "same_coded_latents": all(torch.equal(a, b) for a, b in zip(y_cpu, y_gpu)),
            "gpu_stream_on_gpu": _report(lambda: _tt_latents(gpu, p_gpu, h, w), lambda: y_gpu),
            "gpu_stream_on_gpu_tile_by_tile": _report(lambda: _tt_latents(gpu, p_gpu, h, w, split=True),
                                                      lambda: y_gpu),
            "cpu_stream_on_gpu": _report(lambda: _tt_latents(gpu, p_cpu, h, w), lambda: y_cpu),
            "gpu_stream_on_cpu": _report(lambda: _tt_latents(cpu, p_gpu, h, w), lambda: y_gpu),
        }


# ----------------------------------------------------------------------------- speed
def published_tt(bands: int = 12, seed: int = 0) -> Any:
    """The published-size TEC-TT with seeded random weights, latents widened (see module doc)."""
    from terracodec.normalization import Normalization
    from terracodec.temporal import PUBLISHED, TemporalCodec
    from terracodec.testing import widen_random_tt

    torch.manual_seed(seed)
    config = dict(PUBLISHED, bands=bands, normalization=Normalization.ssl4eo_l2a().to_config())
    return widen_random_tt(TemporalCodec(config)).eval()


def tt_speed(model: Any, x: torch.Tensor) -> dict:
    """Per-frame seconds of a 3-frame sequence `[3, 1, C, H, W]` on the model's device."""
    h, w = x.shape[-2:]
    x = x.to(model.device)
    with torch.no_grad():
        model.encode_sequence(x[:2])  # warm-up: kernels, tables, numba
        from terracodec.temporal import TemporalState

        enc, dec, bits = [], [], []
        es, ds = TemporalState(), TemporalState()
        for t in range(x.shape[0]):
            (p, es), s = timed(lambda: model.encode_frames(x[t], es))
            enc.append(s)
            bits.append(8 * len(p[0]))
            (_, ds), s = timed(lambda: model.decode_frames(p, h, w, ds))
            dec.append(s)
    later_enc, later_dec = sum(enc[1:]) / (len(enc) - 1), sum(dec[1:]) / (len(dec) - 1)
    return {"encode_s": enc, "decode_s": dec, "bits": bits, "fps_encode": 1 / later_enc,
            "fps_decode": 1 / later_dec, "bpppb": sum(bits[1:]) / (len(bits) - 1) / (h * w * x.shape[2])}


def image_speed(model: Any, x: torch.Tensor) -> dict:
    h, w = x.shape[-2:]
    x = x.to(model.device)
    with torch.no_grad():
        model.decode_tiles(model.encode_tiles(x), h, w)  # warm-up
        streams, s_enc = timed(lambda: model.encode_tiles(x))
        _, s_dec = timed(lambda: model.decode_tiles(streams, h, w))
    return {"encode_s": s_enc, "decode_s": s_dec, "fps_encode": x.shape[0] / s_enc,
            "fps_decode": x.shape[0] / s_dec}


# ----------------------------------------------------------------------------- report
def section(results: dict, key: str, fn: Callable[[], Any]) -> None:
    print(f"== {key}", flush=True)
    try:
        results[key] = fn()
    except Exception as exc:  # noqa: BLE001 - a failed part is reported, the rest still runs
        results[key] = {"error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()
    print(json.dumps(results[key], default=str)[:1500], flush=True)


def report(results: dict) -> str:
    env = results["machine"]
    lines = [
        "# CPU against GPU: determinism and speed (`benchmarks/gpu.py`)", "",
        f"{env['gpu']}, torch {env['torch']}, {env['cpu_cores']} CPU cores. Input: central 256 px "
        "crops of OSCD test cities (milano, rio), both dates; larger frames are mosaics of them.", "",
        "## Determinism: the same tiles coded on the CPU and on the GPU", "",
        "| model | same bytes | CPU stream decoded on GPU | GPU stream decoded on CPU | max abs x_hat CPU vs GPU (normalised) |",
        "|---|---|---|---|---:|",
    ]
    for name in IMAGE_MODELS:
        r = results.get(f"determinism_{name}", {})
        if "error" in r:
            lines.append(f"| {name} | error: {r['error'][:80]} | | | |")
            continue
        lines.append(f"| {name} q3 | {r['same_bytes']} | {r['cpu_stream_on_gpu']} | {r['gpu_stream_on_cpu']} "
                     f"| {r['max_abs_x_hat_cpu_vs_gpu']:.1e} |")
    tt = results.get("determinism_tec-tt-small", {})
    lines += ["", "TEC-TT (shipped small model, 2 frames x 2 tiles):", ""]
    lines += [f"* {k}: {v}" for k, v in tt.items()]
    if "foreign_streams" in results:
        lines += ["", f"Streams coded on another machine ({results.get('foreign_coded_on')}), decoded here:", ""]
        lines += [f"* {k}: {v}" for k, v in results["foreign_streams"].items()]
    lines += ["", "## Speed (steady state: frames >= 1 of a 3-frame sequence for the TT)", "",
              "| model | size | encode fps | decode fps | bpppb |", "|---|---|---:|---:|---:|"]
    for key, r in results.items():
        if key.startswith("speed_") and "error" not in r:
            _, model, size = key.split("_", 2)
            lines.append(f"| {model} | {size} | {r['fps_encode']:.2f} | {r['fps_decode']:.2f} | "
                         f"{r.get('bpppb', float('nan')):.4f} |")
        elif key.startswith("speed_"):
            lines.append(f"| {key} | error: {r['error'][:80]} | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--make-inputs", type=Path, help="write the input crops here and exit")
    parser.add_argument("--inputs", type=Path, default=ROOT / ".devdata" / "gpu_inputs.safetensors")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--skip-published", action="store_true", help="no published-size TT")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run without a GPU")
    parser.add_argument("--sizes", default="256,1024")
    parser.add_argument("--only-foreign", action="store_true", help="determinism only, no speed")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if args.make_inputs:
        make_inputs(args.make_inputs)
        return
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("error: no CUDA device: this benchmark compares the CPU with a GPU")
    from safetensors.torch import load_file

    from terracodec.zoo import load_model

    dn = load_file(str(args.inputs))["dn"].to(torch.int32)  # [T, B, 13, 256, 256]
    results: dict = {"machine": {"gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run)", "torch": torch.__version__,
                                 "cpu_cores": torch.get_num_threads(), "host": platform.node()}}
    for name in IMAGE_MODELS:
        section(results, f"determinism_{name}", lambda n=name: image_determinism(n, dn))
    section(results, "determinism_tec-tt-small", lambda: tt_determinism(dn))
    tensors = load_file(str(args.inputs))
    if "tec-tt-small.y_hat" in tensors:
        from safetensors import safe_open

        with safe_open(str(args.inputs), "pt") as f:
            results["foreign_coded_on"] = (f.metadata() or {}).get("coded_on", "?")
        section(results, "foreign_streams", lambda: foreign_check(tensors))
    if args.only_foreign:
        print(json.dumps(results, indent=1, default=str))
        return

    seq = torch.cat([dn, dn[:1].flip(-1)])  # 3 frames: date 1, date 2, date 1 mirrored
    for size in (int(v) for v in args.sizes.split(",")):
        frames = seq[:, :1] if size == 256 else mosaic(seq, size)
        if not args.skip_published:
            def run_published(f=frames):
                model = published_tt().to(DEVICE)
                model.update(force=True)
                return tt_speed(model, normalized(model, bands_for(model, f.float())))
            section(results, f"speed_tec-tt-published_{size}", run_published)
        def run_small(f=frames):
            model = load_model("tec-tt-small").to(DEVICE)
            model.update(force=True)
            return tt_speed(model, normalized(model, f.float()))
        section(results, f"speed_tec-tt-small_{size}", run_small)
        for name in IMAGE_MODELS:
            def run_image(n=name, f=frames):
                model = load_model(n, 3).to(DEVICE)
                model.update(force=True)
                return image_speed(model, normalized(model, bands_for(model, f[0].float())))
            section(results, f"speed_{name}_{size}", run_image)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = report(results)
    (args.out / "gpu.md").write_text(text)
    print(text)
    image_exact = all(results.get(f"determinism_{n}", {}).get("cpu_stream_on_gpu") == "same latents"
                      and results[f"determinism_{n}"].get("gpu_stream_on_cpu") == "same latents"
                      for n in IMAGE_MODELS)
    tt_exact = (tt.get("cpu_stream_on_gpu") == "same latents" and tt.get("gpu_stream_on_cpu") == "same latents"
                if "error" not in (tt := results.get("determinism_tec-tt-small", {"error": 1})) else False)

    def fps(size):
        r = results.get(f"speed_tec-tt-published_{size}", {})
        return f"{r['fps_encode']:.2f}/{r['fps_decode']:.2f}" if "fps_encode" in r else "n/a"

    foreign = results.get("foreign_streams", {})
    machines = ""
    if foreign and "error" not in foreign:
        image_here = all(v == "same latents" for k, v in foreign.items() if not k.startswith("tec-tt"))
        tt_here = all(v == "same latents" for k, v in foreign.items() if k.startswith("tec-tt"))
        machines = f" image_cross_machine_exact={image_here} tt_cross_machine_exact={tt_here}"
    print(f"summary: image_cross_device_exact={image_exact} tt_cross_device_exact={tt_exact}{machines} "
          f"tt_fps_256={fps(256)} tt_fps_1024={fps(1024)}")


if __name__ == "__main__":
    main()
