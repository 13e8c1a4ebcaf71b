"""The Python API: `encode`, `decode`, `decode_latents`, `info`, `models` (`tec` mirrors it).

    terracodec.encode(["t1.tif", "t2.tif"], "series.tec", model="tec-fp-s2l1c", quality=2)
    stack = terracodec.decode("series.tec")                 # arrays + georeferencing
    terracodec.decode("series.tec", "out/", frames=[0])     # or GeoTIFFs

Scenes stream through tile row by tile row, so a full Sentinel-2 tile encodes and decodes in
bounded memory; outputs appear atomically. One module per job:

| module | job |
|---|---|
| `args` | checking what callers pass |
| `stream`, `describe` | opening a stream and describing it (`info`; no torch) |
| `resolve` | which model codes a stream |
| `prepare` | the header of a new stream; are the inputs what the model codes |
| `tiles` | which tiles are coded in which order, and which side by side |
| `encoding`, `decoding`, `latents` | the three ways through the codec |

Names are imported on first use (`tec info` must not pay for torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name -> module. Modules are not named after functions (`decoding`, not `decode`):
#: importing a submodule sets it as an attribute of the package, which would hide the function.
_NAMES = {
    "encode": "encoding", "decode": "decoding", "Decoded": "decoding", "decode_latents": "latents",
    "Latents": "latents", "LATENT_STRIDE": "latents", "info": "describe", "models": "resolve",
    "DEFAULT_MODEL": "args", "DEFAULT_TILE_SIZE": "args",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module(f"terracodec.api.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'terracodec.api' has no attribute {name!r}")
