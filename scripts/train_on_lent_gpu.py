"""Train a TEC-TT on a lent GPU machine that cannot read `../shared` (and has no rasterio).

`tec train ... --device cuda` is the command where the data and the GPU are on one machine. Here
they are not, so the same training runs in two halves:

* `pack` (here, where the rasters are): every multi-date sequence under the inputs, each date's
  files at their native resolutions (10/20/60 m), DN quantised to multiples of `--step`
  (default 32: an error of at most 16 DN, PSNR-10k ~61 dB, far above what the codec reaches),
  row-delta coded and LZMA-compressed so that the OSCD train split fits the 64 MiB a call may
  carry. Band order and date order are those `tec train` uses (`load_sequences`).
* `train` (there): unpacks, resamples to the finest grid exactly as `read_scene` does
  (bilinear, rounded), cuts each sequence to its dates' common extent, and runs the same
  `SequenceSampler` and `train()` as `tec train --arch tec-tt`, with a time limit.
* `probe` (there): steps per second of a configuration on random data, to size `--steps`.

    python scripts/train_on_lent_gpu.py pack .devdata/oscd_train.npz ../shared/data/oscd_s2_l1c/{aguasclaras,...}
    python scripts/train_on_lent_gpu.py train .devdata/oscd_train.npz --out DIR --lambda 30 \
        --arch-config '{"latent_channels": 128, ...}' --steps 12000 --max-minutes 9
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def pack(out: Path, inputs: list[str], step: int) -> None:
    import rasterio

    from terracodec.bands import S2_L1C_BANDS
    from terracodec.training.data import band_names
    from terracodec.training.sequences import discover_sequences

    arrays: dict[str, np.ndarray] = {}
    meta = {"step": step, "bands": list(S2_L1C_BANDS), "sequences": []}
    raw = packed = 0
    for s, scenes in enumerate(discover_sequences(inputs)):
        frames = []
        for f, paths in enumerate(scenes):
            files = []
            for k, path in enumerate(paths):
                with rasterio.open(path) as ds:
                    names = band_names(ds)
                    keep = [i for i, n in enumerate(names) if n in S2_L1C_BANDS]
                    if not keep:
                        continue
                    dn = ds.read([i + 1 for i in keep]).astype(np.int32)
                q = np.rint(dn / step).astype(np.int16)
                delta = np.diff(q, axis=2, prepend=np.zeros_like(q[:, :, :1]))
                key = f"s{s}_f{f}_k{k}"
                arrays[key] = np.frombuffer(lzma.compress(delta.tobytes(), preset=9), dtype=np.uint8)
                files.append({"key": key, "bands": [names[i] for i in keep], "shape": list(q.shape)})
                raw += dn.size * 2
                packed += arrays[key].size
            if files:
                frames.append({"name": str(paths[0]), "files": files})
        if len(frames) >= 2:
            meta["sequences"].append(frames)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    print(f"wrote {out}: {len(meta['sequences'])} sequences, {raw / 2**20:.0f} MiB of uint16 -> "
          f"{packed / 2**20:.1f} MiB")


def unpack(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Sequences `[T, C, H, W]` int32 DN on the finest grid, as `load_sequences` returns them
    (call `_stub_rasterio` first where rasterio is missing)."""
    from terracodec.training.data import on_finest_grid
    from terracodec.training.sequences import common_extent

    data = np.load(path)
    meta = json.loads(bytes(data["meta"]).decode())
    bands, step = meta["bands"], meta["step"]
    sequences = []
    for frames in meta["sequences"]:
        decoded = []
        for frame in frames:
            found = {}
            for f in frame["files"]:
                delta = np.frombuffer(lzma.decompress(data[f["key"]].tobytes()), dtype=np.int16)
                q = np.cumsum(delta.reshape(f["shape"]).astype(np.int32), axis=2) * step
                for name, band in zip(f["bands"], q):
                    found.setdefault(name, band)
            decoded.append(on_finest_grid(found, bands))
        sequences.append(common_extent(decoded))
    return sequences, bands


def _stub_rasterio() -> None:
    """The GPU machine has no rasterio; the sequence sampler needs none of it, but the modules
    it comes with import it (and affine): stand-in modules whose every attribute is a placeholder type."""
    try:
        import affine  # noqa: F401
        import rasterio  # noqa: F401
    except ImportError:
        import importlib.abc
        import importlib.machinery
        import types

        class _Stub(types.ModuleType):
            __path__: list = []

            def __getattr__(self, name):
                if name.startswith("__"):
                    raise AttributeError(name)
                return type(name, (Exception,), {})

        class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("rasterio", "affine"):
                    return importlib.machinery.ModuleSpec(name, self, is_package=True)
                return None

            def create_module(self, spec):
                return _Stub(spec.name)

            def exec_module(self, module):
                pass

        sys.meta_path.insert(0, _Finder())


def prefetch(samplers, batch_size: int, depth: int = 8):
    """Draw batches on background threads (one sampler each: numpy's copies release the GIL)
    while the GPU trains. The order batches arrive in varies from run to run."""
    q: queue.Queue = queue.Queue(depth)

    def work(sampler):
        for b in sampler.batches(batch_size):
            q.put(b.pin_memory() if torch.cuda.is_available() else b)

    for sampler in samplers:
        threading.Thread(target=work, args=(sampler,), daemon=True).start()
    while True:
        yield q.get()


def build_model(config_text: str, bands: list[str], lmbda: float, seed: int):
    """The model and normalisation `tec train --arch tec-tt --arch-config TEXT` builds (OSCD
    predates the baseline offset)."""
    from terracodec.cli.train import new_model, training_normalization

    norm = training_normalization(tuple(bands), has_offset=False)
    return new_model("tec-tt", 64, 64, config_text, tuple(bands), norm, [lmbda], seed), norm


def _fast_gpu_settings() -> None:
    """TF32 matrix products and cuDNN autotuning: training only (coding never runs here)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def train_main(args) -> None:
    _stub_rasterio()
    from terracodec.training.loop import TrainConfig, train
    from terracodec.training.sequences import SequenceSampler

    _fast_gpu_settings()
    t0 = time.perf_counter()
    sequences, bands = unpack(args.pack)
    print(f"unpacked {len(sequences)} sequences in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{s.shape[0]}x{s.shape[2]}x{s.shape[3]}" for s in sequences), flush=True)
    model, norm = build_model(args.arch_config, bands, args.lmbda, args.seed)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    samplers = [SequenceSampler(sequences, norm, crop=args.crop, frames=args.frames, seed=args.seed + i)
                for i in range(args.loader_threads)]
    cfg = TrainConfig(lmbda=args.lmbda, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, warmup_steps=min(500, args.steps // 10), log_every=100,
                      checkpoint_every=10**9, max_seconds=60 * args.max_minutes)

    def save(m, stem: Path) -> None:
        m.update(force=True)
        m.save_pretrained(str(stem))

    def report(step: int, row: dict) -> None:
        print(f"step {step}/{args.steps} loss {row['loss']:.4f} bpppb {row['bpppb']:.4f} "
              f"mse {row['mse']:.4f} lr {row['lr']:.1e} {row['seconds']:.0f} s", flush=True)

    state = train(model, prefetch(samplers, args.batch_size), cfg, args.out, save=save,
                  device=args.device, progress=report)
    (args.out / "train_state.safetensors").unlink(missing_ok=True)  # Adam moments: not shipped
    print(f"stopped at step {state.step} of {args.steps}", flush=True)


def probe_main(args) -> None:
    """Seconds per step of `train()` for a configuration, on random data (no data needed)."""
    import tempfile

    _stub_rasterio()
    _fast_gpu_settings()
    from terracodec.bands import S2_L1C_BANDS
    from terracodec.training.loop import TrainConfig, train

    warm = 3  # the first steps pay kernel selection and autotuning
    for batch in args.batch_sizes:
        model, _ = build_model(args.arch_config, list(S2_L1C_BANDS), args.lmbda, 0)
        x = torch.randn(batch, args.frames, 13, args.crop, args.crop)
        cfg = TrainConfig(lmbda=args.lmbda, steps=args.probe_steps, batch_size=batch, warmup_steps=1,
                          log_every=warm, checkpoint_every=10**9)
        with tempfile.TemporaryDirectory() as tmp:
            state = train(model, iter(lambda: x, None), cfg, Path(tmp), save=lambda m, s: None,
                          device=args.device)
        first, last = state.history[0], state.history[-1]
        step = (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])
        print(f"probe batch {batch}: {step * 1000:.1f} ms/step, {batch / step:.0f} sequences/s", flush=True)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("out", type=Path)
    a.add_argument("inputs", nargs="+")
    a.add_argument("--step", type=int, default=32)
    for name in ("train", "probe"):
        b = sub.add_parser(name)
        if name == "train":
            b.add_argument("pack", type=Path)
            b.add_argument("--out", type=Path, required=True)
            b.add_argument("--steps", type=int, required=True)
            b.add_argument("--max-minutes", type=float, default=9.0)
            b.add_argument("--batch-size", type=int, default=16)
            b.add_argument("--lr", type=float, default=3e-4)
            b.add_argument("--seed", type=int, default=0)
            b.add_argument("--loader-threads", type=int, default=6)
        else:
            b.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
            b.add_argument("--probe-steps", type=int, default=15)
        b.add_argument("--arch-config", default="{}")
        b.add_argument("--lambda", dest="lmbda", type=float, default=30.0)
        b.add_argument("--crop", type=int, default=128)
        b.add_argument("--frames", type=int, default=2)
        b.add_argument("--device", default="cuda")
    args = p.parse_args()
    if args.cmd == "pack":
        pack(args.out, args.inputs, args.step)
    elif args.cmd == "train":
        train_main(args)
    else:
        probe_main(args)


if __name__ == "__main__":
    main()
