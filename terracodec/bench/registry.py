"""Codec names -> codec objects: the classical and video codecs, plus every registered model.

Registered terracodec models are picked up from `terracodec.api.models()` each time, so a model
added to the registry is benchmarked without touching this file.
"""

from __future__ import annotations

from terracodec.bench.base import Codec
from terracodec.bench.classical import CLASSICAL_IMAGE_CODECS
from terracodec.bench.learned import TerracodecModel
from terracodec.bench.video import VIDEO_CODECS
from terracodec.errors import InputError

CLASSICAL = {c.name: c for c in CLASSICAL_IMAGE_CODECS + VIDEO_CODECS}


def codec_names() -> list[str]:
    """Every codec name `tec bench --codecs` knows, available here or not."""
    return list(CLASSICAL) + [m.name for m in TerracodecModel.registered()] + list(_unbenched_models())


def unavailable_codecs() -> dict[str, str]:
    """name -> why it cannot run here: classical codecs missing here, models not benched yet."""
    missing = {name: why for name, cls in CLASSICAL.items() if (why := cls.unavailable())}
    return {**missing, **_unbenched_models()}


def _unbenched_models() -> dict[str, str]:
    """Registered models the bench cannot run yet, with the reason."""
    from terracodec import api

    return {m["name"]: f"{m['kind']} models are not in the bench yet"
            for m in api.models() if m.get("kind", "image") != "image"}


def make_codecs(names: list[str] | None = None, *, threads: int | None = None,
                device: str | None = None) -> tuple[list[Codec], dict[str, str]]:
    """(codecs ready to run, {name: reason} of those left out).

    `names` None means every codec: the unavailable ones are left out with their reason. A name
    asked for explicitly that cannot run is an InputError, as is an unknown name.
    """
    models = {m.name: m for m in TerracodecModel.registered(device)}
    known = list(CLASSICAL) + list(models)
    explicit = names is not None
    wanted = list(dict.fromkeys(names)) if explicit else known
    unbenched = _unbenched_models()
    for name in wanted:
        if name in unbenched:
            raise InputError(f"codec {name} cannot run here: {unbenched[name]}")
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(f"unknown codec {', '.join(unknown)} (known: {', '.join(known)})")
    codecs: list[Codec] = []
    skipped: dict[str, str] = {}
    for name in wanted:
        if name in models:
            codecs.append(models[name])
            continue
        cls = CLASSICAL[name]
        why = cls.unavailable()
        if why:
            if explicit:
                raise InputError(f"codec {name} cannot run here: {why}")
            skipped[name] = why
            continue
        codecs.append(cls(threads=threads))
    return codecs, skipped
