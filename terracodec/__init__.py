"""terracodec: learned compression of Earth-observation imagery."""

__version__ = "0.1.0"

__all__ = ["__version__", "decode", "decode_latents", "encode", "info", "models"]


def __getattr__(name: str):
    """`terracodec.encode` etc. come from `terracodec.api`, imported on first use so that
    `import terracodec.<module>` does not pull in rasterio and the whole pipeline.
    `terracodec.models` is the models package, which is callable: `terracodec.models()` lists
    the available models (see `terracodec/models/__init__.py`)."""
    if name in ("decode", "decode_latents", "encode", "info"):
        from terracodec import api

        return getattr(api, name)
    if name == "models":
        import terracodec.models

        return terracodec.models
    raise AttributeError(f"module 'terracodec' has no attribute {name!r}")
