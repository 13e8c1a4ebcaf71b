"""The portable entropy-parameter paths of TEC-TT, by the name a stream records
(`codec.coder_platform`): each turns the float entropy model into a twin that computes the same
bits on every machine. New streams use `CURRENT_PATH`; every older path stays decodable.

    "exact-v1"  float64 GEMMs of 20-bit integer mantissas (`exact_layers.to_exact`)
    "int8-v2"   int8 x int8 -> int32 GEMMs, integer attention (`integer_layers.to_integer`)

Any other non-empty value names the CPU and torch build whose float32 path coded a stream
written before the portable paths; such streams decode bit-exactly only there.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from torch import nn

from terracodec.errors import CorruptStreamError
from terracodec.header import PORTABLE_ENTROPY_PATHS

#: What new TEC-TT streams are coded with.
CURRENT_PATH = PORTABLE_ENTROPY_PATHS[-1]


def _builders() -> dict[str, Callable[[nn.Module], nn.Module]]:
    from terracodec.temporal.exact_layers import EXACT_PATH, to_exact
    from terracodec.temporal.integer_layers import INTEGER_PATH, to_integer

    return {EXACT_PATH: to_exact, INTEGER_PATH: to_integer}


def is_portable(coded_on: str) -> bool:
    """Whether a stream's `coder_platform` names a portable path (it decodes anywhere)."""
    return coded_on in PORTABLE_ENTROPY_PATHS


def portable_twin(coded_on: str, model: nn.Module) -> nn.Module:
    """The twin of the entropy model `model` for the portable path `coded_on`."""
    builders = _builders()
    if coded_on not in builders:
        raise ValueError(f"unknown portable entropy path {coded_on!r}")
    twin = builders[coded_on](model)
    twin.portable_path = coded_on  # coding needs no row padding for it (`coding._autoregress`)
    return twin


@contextmanager
def platform_hint(coded_on: str) -> Iterator[None]:
    """A frame of a float-path stream that fails to decode on another platform than the one that
    coded it most likely failed because of that (float32 entropy parameters): say so."""
    try:
        yield
    except CorruptStreamError as exc:
        from terracodec.temporal.coding import coder_platform

        here = coder_platform()
        if not coded_on or coded_on == here or is_portable(coded_on):
            raise
        raise CorruptStreamError(
            f"{exc}. This TEC-TT stream was coded on '{coded_on}', this machine is "
            f"'{here}': TEC-TT streams decode bit-exactly only on the platform that coded "
            "them (docs/DESIGN.md section 5)"
        ) from None


__all__ = ["CURRENT_PATH", "is_portable", "platform_hint", "portable_twin"]
