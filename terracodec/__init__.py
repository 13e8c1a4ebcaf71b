"""terracodec: learned compression of Earth-observation imagery."""

__version__ = "0.1.0"
