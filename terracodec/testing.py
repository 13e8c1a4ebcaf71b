"""Support for tests and benchmarks: CompressAI for parity checks (the dev extra), and TEC-TT
models with random weights that still code realistically.

CompressAI imports torchvision, whose PyPI wheel cannot load its C ops beside the CPU build of
torch. CompressAI's entropy models, coders and layers never use torchvision, so when the real
one is absent or fails to import, an empty stand-in takes its place. CompressAI is no
dependency of ours: `benchmarks/entropy_coding.py` runs in an environment that has it.
"""

from __future__ import annotations

import importlib
import sys
import types
from types import ModuleType
from typing import Any

#: Environments in which torch uses other CPU kernels (other summation orders), as another CPU
#: would: portable streams must decode identically under each (`tests/test_exact_tt.py`,
#: `benchmarks/tt_portability.py`).
CPU_KERNEL_ENVIRONMENTS: dict[str, dict[str, str]] = {
    "scalar": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    "avx2-one-thread": {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
}


def latents_elsewhere(stream: Any, env_name: str, scratch: Any) -> Any:
    """`decode_latents(stream).y_hat` computed in a child process under the CPU kernels of
    `CPU_KERNEL_ENVIRONMENTS[env_name]` (its `.npy` written under `scratch`), as an array."""
    import os
    import subprocess
    from pathlib import Path

    import numpy as np

    out = Path(scratch) / f"latents_{env_name}.npy"
    code = "import sys, numpy as np, terracodec; np.save(sys.argv[2], terracodec.decode_latents(sys.argv[1]).y_hat)"
    proc = subprocess.run([sys.executable, "-c", code, str(stream), str(out)], capture_output=True, text=True,
                          env=dict(os.environ, **CPU_KERNEL_ENVIRONMENTS[env_name]), timeout=600)
    if proc.returncode:
        raise RuntimeError(f"decoding under {env_name} failed: {proc.stderr[-2000:]}")
    return np.load(out)


def import_compressai() -> ModuleType:
    """Import CompressAI; ImportError when it is not installed (it is not a core dependency)."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError):  # absent, or broken beside the CPU build of torch
        for name in [n for n in sys.modules if n.startswith("torchvision")]:
            del sys.modules[name]
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")
        sys.modules["torchvision"] = stub
        sys.modules["torchvision.transforms"] = stub.transforms
    return importlib.import_module("compressai")


def widen_random_tt(model: Any, gain: float = 12.0, scale_bias: float = 1.5) -> Any:
    """A randomly initialised TEC-TT made to code like a trained one, in place: random init gives
    latents |y| << 1 (all zeros once rounded), so the last analysis convolution is scaled by
    `gain` (a trained model's latents span several integers), and the scale head's bias is
    lifted by `scale_bias` (predicted scales near the latents' spread; otherwise most residuals
    escape the tables). The reference-side twin is in tests/fixtures/make_tt_fixtures.py."""
    import torch

    with torch.no_grad():
        convs = [m for m in model.transform.analysis_transform.transforms if isinstance(m, torch.nn.Conv2d)]
        convs[-1].weight.mul_(gain)
        convs[-1].bias.mul_(gain)
        model.entropy_model.scale_head[-1].bias.add_(scale_bias)
    return model
