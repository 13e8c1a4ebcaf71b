"""terracodec: learned compression of Earth-observation imagery."""

__version__ = "0.1.0"

__all__ = ["__version__", "decode", "decode_latents", "encode", "info", "models"]


def __getattr__(name: str):
    """`terracodec.encode` etc. come from `terracodec.api`, imported on first use so that
    `import terracodec.<module>` does not pull in rasterio and the whole pipeline."""
    if name in ("decode", "decode_latents", "encode", "info", "models"):
        from terracodec import api

        return getattr(api, name)
    raise AttributeError(f"module 'terracodec' has no attribute {name!r}")
