"""Models on workers: passed by (name, quality, weights file, weights hash), loaded once per
worker process, checked against the hash the stream records.

A worker of an executor (`terracodec.api.execute`) is another process; what travels to it is a
`ModelSpec`, not a model. Its torch thread count is set once, when it loads its first model
(the executor runs one job per process at a time, so one thread: `WORKER_THREADS`), never saved
and restored per call. A model that is no registered name (an `ImageCodec` built by the caller)
travels pickled.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from terracodec.errors import ModelError

#: Intra-op threads of a worker process (the executor's processes are its parallelism).
WORKER_THREADS = 1
_SET_UP = threading.Event()


@dataclass(frozen=True)
class ModelSpec:
    """How a worker gets the model: a zoo name (+ quality, weights file, expected hash, device),
    or the instance itself (pickled)."""

    name: str | None
    quality: Any = None
    weights: str | None = None
    weights_hash: str = ""
    device: str | None = None
    instance: Any = None
    #: The process that made the spec: a worker in it (a thread pool as executor) leaves the
    #: process's torch thread count alone.
    origin_pid: int = 0

    @classmethod
    def of(cls, codec: Any, weights: str | None = None, device: str | None = None) -> "ModelSpec":
        """The spec of a loaded codec: by name when the zoo has it, else the instance."""
        from terracodec.zoo.table import MODELS

        name = getattr(codec, "config", {}).get("name")
        to_hash = getattr(codec, "weights_hash", None)
        digest = to_hash() if to_hash else ""
        if name in MODELS:
            return cls(name, codec.config.get("quality"), weights, digest, device, origin_pid=os.getpid())
        return cls(None, instance=codec, origin_pid=os.getpid())

    def load(self) -> Any:
        if self.instance is not None:
            return self.instance
        if os.getpid() != self.origin_pid and not _SET_UP.is_set():
            import torch

            torch.set_num_threads(WORKER_THREADS)  # once per worker process
            _SET_UP.set()
        codec = worker_model(self.name, self.quality, self.weights, _stamp(self.weights), self.device)
        if self.weights_hash and codec.weights_hash() != self.weights_hash:
            raise ModelError(f"worker loaded {self.name} with weights {codec.weights_hash()[:12]}, "
                             f"expected {self.weights_hash[:12]}")
        return codec


def _stamp(weights: str | None) -> Any:
    if not weights:
        return None
    st = os.stat(weights)
    return (st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def worker_model(name: str, quality: Any, weights: str | None, stamp: Any, device: str | None) -> Any:
    """A zoo model, loaded once per process (and per weights file version and device)."""
    import torch

    from terracodec.zoo import load_model

    with torch.inference_mode(False):
        codec = load_model(name, quality, weights=weights).eval()
    return codec.to(torch.device(device)) if device else codec


__all__ = ["ModelSpec", "WORKER_THREADS", "worker_model"]
