"""TEC-TT, the temporal transformer codec: model, entropy model, autoregressive coding."""

from terracodec.temporal.entropy_model import TemporalEntropyModel
from terracodec.temporal.model import PUBLISHED, TemporalCodec, TemporalState

__all__ = ["TemporalCodec", "TemporalEntropyModel", "TemporalState", "PUBLISHED"]
