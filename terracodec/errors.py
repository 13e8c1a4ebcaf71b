"""Exception types. The CLI turns any `TerracodecError` into a one-line message and exit code 1."""


class TerracodecError(Exception):
    """Base class of every error we raise on purpose."""


class CorruptStreamError(TerracodecError):
    """A stream or container is truncated, corrupted, or was not written by us."""


class InputError(TerracodecError):
    """User input is missing, unreadable or inconsistent (files, grids, dtypes, options)."""


class ModelError(TerracodecError):
    """A model name, quality or weights file is unknown or incompatible."""


class TerracodecWarning(UserWarning):
    """Something the caller should know, though the result is valid (the CLI prints
    `warning: <message>`)."""
