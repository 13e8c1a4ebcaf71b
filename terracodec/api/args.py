"""Checking what callers pass to the API: one clear `InputError` for anything malformed, never
a raw Python error and never a silent reinterpretation (`frames="10"` is not frames 1 and 0)."""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Sequence

from terracodec.errors import InputError

#: The model of `resolve_model(None)` (no input to fit: `encode` picks by `terracodec.zoo.choice`).
DEFAULT_MODEL = "tec-fp-s2l1c"
DEFAULT_TILE_SIZE = 512


def check_int(value: Any, what: str) -> int:
    """An integer (Python or numpy), not a bool, a float or a string that looks like one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{what} must be an integer, got {value!r}")
    return int(value)


def check_source(source: Any) -> str | os.PathLike | bytes:
    """A `.tec` path or its bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"no such file: {path}")
        if path.is_dir():
            raise InputError(f"not a .tec file: {path} is a directory")
        return source
    raise InputError(f"a .tec stream must be a path or bytes, got {type(source).__name__}")


def check_output(output: Any) -> Path | None:
    if output is None:
        return None
    if not isinstance(output, (str, os.PathLike)) or not str(output):
        raise InputError(f"output must be a path, got {output!r}")
    return Path(output)


def parse_frames(frames: Sequence[int] | int | None, count: int) -> list[int]:
    """Frame indices (a sequence of integers, or one) checked against the stream's frames."""
    if frames is None:
        return list(range(count))
    if isinstance(frames, numbers.Integral) and not isinstance(frames, bool):
        items: list[Any] = [frames]
    elif isinstance(frames, (str, bytes)) or not isinstance(frames, Iterable):
        raise InputError(f"frames must be a list of integers, got {frames!r}")
    else:
        items = list(frames)
    out = [check_int(f, "a frame index") for f in items]
    bad = [f for f in out if not 0 <= f < count]
    if bad or not out:
        raise InputError(f"frames {bad or '[]'} outside the stream's {count} frames (0..{count - 1})")
    if len(set(out)) != len(out):
        raise InputError(f"frames {out} name a frame twice")
    return out


def parse_window(window: Sequence[int] | None, height: int, width: int) -> tuple[int, int, int, int]:
    """(col_off, row_off, width, height) checked against the scene."""
    if window is None:
        return 0, 0, width, height
    if isinstance(window, (str, bytes)) or not hasattr(window, "__len__") or len(window) != 4:
        raise InputError(f"window must be 4 integers (col_off, row_off, width, height), got {window!r}")
    col_off, row_off, w, h = (check_int(v, "a window value") for v in window)
    if w < 1 or h < 1 or col_off < 0 or row_off < 0 or col_off + w > width or row_off + h > height:
        raise InputError(f"window {col_off},{row_off},{w},{h} is outside the {width}x{height} scene")
    return col_off, row_off, w, h


def check_quality(quality: Any) -> Any:
    """None, an integer, a finite number or a string (the registry decides which exist)."""
    if quality is None or isinstance(quality, str):
        return quality
    if isinstance(quality, bool) or not isinstance(quality, numbers.Real):
        raise InputError(f"quality must be a number or a name, got {quality!r}")
    if isinstance(quality, numbers.Integral):
        return int(quality)
    if quality != quality or quality in (float("inf"), float("-inf")):
        raise InputError(f"quality must be finite, got {quality!r}")
    return float(quality)


def check_tile_size(tile_size: Any) -> int:
    from terracodec.limits import MAX_TILE_SIZE

    size = check_int(tile_size, "tile size")
    if not 1 <= size <= MAX_TILE_SIZE:
        raise InputError(f"tile size must be 1..{MAX_TILE_SIZE} pixels, got {size}")
    return size


def check_baseline_offset(value: Any) -> str | bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if value == "auto":
        return "auto"
    raise InputError(f"baseline_offset must be 'auto', True or False, got {value!r}")


def check_scale(value: Any) -> str | float:
    """`dn_scale`: "auto" or a positive finite factor from the input's values to DN."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < float("inf"):
        raise InputError(f"scale must be 'auto' or a positive number, got {value!r}")
    return float(value)


__all__ = [
    "DEFAULT_MODEL", "DEFAULT_TILE_SIZE", "check_baseline_offset", "check_int", "check_output",
    "check_quality", "check_scale", "check_source", "check_tile_size", "parse_frames", "parse_window",
]
