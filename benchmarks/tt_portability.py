"""Published-size TEC-TT streams across CPU kernel sets (issue 16): too slow for the suite.

The published-size model (d_model 768, 16 heads, 6+4+5 layers, ~225 M parameters) with the random
weights of `fixtures_large/tt_published` (written by `benchmarks/tt_speed.py` through the
reference environment; without them: a seeded random model of that size) codes 2 frames of
256x256x12 real S2 L2A here; child processes decode the payloads with torch's other CPU kernels
(`ATEN_CPU_CAPABILITY=default` + `MKL_CBWR=COMPATIBLE`; `avx2` on one thread) and natively, and
one child encodes under the scalar kernels. Reported: whether every decode gives the same
quantised latents and decoder features, whether the scalar-kernel encode gives the same bytes,
and the times.

    python benchmarks/tt_portability.py     # -> benchmarks/results/tt_portability.{json,md}

Last line: `summary: identical_decodes=<k>/<n> identical_encode=<bool> encode_s=<x> decode_s=<x>`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, write_report

from terracodec.testing import CPU_KERNEL_ENVIRONMENTS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures_large" / "tt_published"
ENVIRONMENTS = {"native": {}, **CPU_KERNEL_ENVIRONMENTS}


def load_model(weights: str):
    from safetensors.torch import load_file

    from terracodec.temporal.checkpoint import tt_model_from_state

    return tt_model_from_state(load_file(weights), "benchmark weights")


def child(args: dict) -> None:
    """Encode (frames .npy -> payloads .json) or decode (payloads -> latents .npz), timed."""
    import torch

    model = load_model(args["weights"])
    start = time.perf_counter()
    with torch.no_grad():
        if args["mode"] == "encode":
            x = torch.from_numpy(np.load(args["frames"]))
            payloads, _ = model.encode_sequence(x)
            Path(args["out"]).write_text(json.dumps([[p.hex() for p in f] for f in payloads]))
        else:
            from terracodec.temporal import TemporalState

            payloads = [[bytes.fromhex(p) for p in f] for f in json.loads(Path(args["payloads"]).read_text())]
            state, ys, fs = TemporalState(), [], []
            for p in payloads:
                latents, state = model.decode_latent_frames(p, args["size"], args["size"], state)
                ys.append(latents["y_hat"].numpy())
                fs.append(latents["features"].numpy())
            np.savez(args["out"], y=np.stack(ys), f=np.stack(fs))
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run_child(env: dict, **args) -> float:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], env=dict(os.environ, **env),
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"child failed: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def inputs(tmp: Path) -> tuple[str, str, int]:
    """(weights file, frames .npy [T, 1, 12, S, S] normalised, S)."""
    import torch
    from safetensors.torch import load_file, save_file

    from terracodec.normalization import Normalization

    if (FIXTURES / "weights.safetensors").exists():
        data = load_file(str(FIXTURES / "data.safetensors"))
        x = Normalization.ssl4eo_l2a().normalize(data["dn"].to(torch.float64).transpose(0, 1)).transpose(0, 1).float()
        weights = str(FIXTURES / "weights.safetensors")
    else:
        from terracodec.temporal import TemporalCodec
        from terracodec.testing import widen_random_tt

        torch.manual_seed(0)
        model = widen_random_tt(TemporalCodec({"bands": 12}))
        state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("entropy_model.bottleneck.")}
        weights = str(tmp / "weights.safetensors")
        save_file(state, weights)
        x = torch.randn(2, 12, 256, 256) * 0.5
    np.save(tmp / "x.npy", x[:, None].numpy() if x.dim() == 4 else x.numpy())
    return weights, str(tmp / "x.npy"), int(x.shape[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights, frames, size = inputs(tmp)
        encode_s = run_child({}, mode="encode", weights=weights, frames=frames, out=str(tmp / "p.json"))
        times, outputs = {}, {}
        for name, env in ENVIRONMENTS.items():
            out = tmp / f"{name}.npz"
            times[name] = run_child(env, mode="decode", weights=weights, payloads=str(tmp / "p.json"),
                                    size=size, out=str(out))
            outputs[name] = dict(np.load(out))
        same = [name for name in ENVIRONMENTS if all(np.array_equal(outputs[name][k], outputs["native"][k]) for k in "yf")]
        run_child(ENVIRONMENTS["scalar"], mode="encode", weights=weights, frames=frames, out=str(tmp / "q.json"))
        identical_encode = (tmp / "q.json").read_text() == (tmp / "p.json").read_text()
    result = {"size": size, "frames": 2, "encode_seconds": encode_s, "decode_seconds": times,
              "identical_decodes": same, "identical_encode_under_scalar_kernels": identical_encode,
              "weights": "fixtures_large/tt_published" if FIXTURES.exists() else "seeded random"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tt_portability.json").write_text(json.dumps(result, indent=2))
    lines = ["# Published-size TEC-TT across CPU kernel sets (benchmarks/tt_portability.py)", "",
             f"2 frames of {size}x{size}x12, weights: {result['weights']}; encoded natively in {encode_s:.1f} s.", "",
             "| decoded under | seconds | same latents and features as native |", "|---|---|---|"]
    lines += [f"| {n} | {times[n]:.1f} | {n in same} |" for n in ENVIRONMENTS]
    lines += ["", f"Encoded under the scalar kernels: the same bytes as native: {identical_encode}.", ""]
    write_report("tt_portability", lines,
                 f"summary: identical_decodes={len(same)}/{len(ENVIRONMENTS)} identical_encode={identical_encode} "
                 f"encode_s={encode_s:.1f} decode_s={times['native']:.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
