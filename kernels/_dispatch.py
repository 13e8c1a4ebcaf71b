"""Choosing between a Triton kernel and its torch reference.

Rule (one for every kernel in this package): `backend="auto"` runs Triton only on CUDA tensors
when no gradient is needed (the kernels have no backward); `backend="torch"` always runs the
reference; `backend="triton"` forces the kernel, which on CPU tensors needs `TRITON_INTERPRET=1`
(how the tests exercise it without a GPU). The environment variable `TERRACODEC_KERNELS`
(`auto` | `torch` | `triton`) sets the default for a whole process.
"""

from __future__ import annotations

import functools
import os

import torch

BACKENDS = ("auto", "torch", "triton")


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def use_triton(*tensors: torch.Tensor | None, backend: str | None = None) -> bool:
    """True when the Triton kernel should run on `tensors` (see the module docstring)."""
    choice = backend or os.environ.get("TERRACODEC_KERNELS", "auto")
    if choice not in BACKENDS:
        raise ValueError(f"unknown kernel backend {choice!r} (expected one of {BACKENDS})")
    present = [t for t in tensors if t is not None]
    if choice == "torch":
        return False
    if choice == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton' requested but triton is not installed")
        if not interpreting() and not all(t.is_cuda for t in present):
            raise RuntimeError("backend='triton' needs CUDA tensors or TRITON_INTERPRET=1")
        return True
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in present)
    return (
        triton_available()
        and not interpreting()
        and not needs_grad
        and bool(present)
        and all(t.is_cuda for t in present)
    )
