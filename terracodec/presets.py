"""Named normalisation statistics, without torch: what a normalisation name stands for.

`terracodec.normalization.Normalization` applies them; the container's compact header
(`terracodec.header_compact`) stores a registered normalisation by its name alone, and a reader
gets the numbers back from here.
"""

from __future__ import annotations

S2_L1C_MEAN = (
    2607.345, 2393.068, 2320.225, 2373.963, 2562.536, 3110.071, 3392.832,
    3321.154, 3583.77, 1838.712, 1021.753, 3205.112, 2545.798,
)
S2_L1C_STD = (
    786.523, 849.702, 875.318, 1143.578, 1126.248, 1161.98, 1273.505,
    1246.79, 1342.755, 576.795, 45.626, 1340.347, 1145.036,
)
S2_L2A_MEAN = (
    1793.243, 1924.863, 2184.553, 2340.936, 2671.402, 3240.082, 3468.412,
    3563.244, 3627.704, 3711.071, 3416.714, 2849.625,
)
S2_L2A_STD = (
    1160.144, 1201.092, 1219.943, 1397.225, 1400.035, 1373.136, 1429.17,
    1485.025, 1447.836, 1652.703, 1471.002, 1365.307,
)


#: DN added to every band by Sentinel-2 processing baseline 04.00 and later (January 2022 on).
#: SSL4EO-S12 v1.1 was built from such products, so its means include it (B10's mean of 1022 DN
#: is ~22 DN of cirrus signal plus the offset).
BASELINE_OFFSET = 1000.0


#: Normalisation names whose means include the offset (SSL4EO-S12 v1.1 as published).
WITH_OFFSET_NAMES = ("ssl4eo-s12-l1c", "ssl4eo-s12-l2a")
#: Suffix `without_baseline_offset` gives a name: statistics of data without the offset.
NO_OFFSET_SUFFIX = "-no-offset"


def preset_stats(name: str, bands: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) of a named normalisation for `bands` bands, or None when it is no preset:
    `ssl4eo-s12-l1c` (13 bands), `ssl4eo-s12-l2a` (12), either with `-no-offset` (means 1000 DN
    lower), `identity`."""
    base, shift = name, 0.0
    if name.endswith(NO_OFFSET_SUFFIX):
        base, shift = name[: -len(NO_OFFSET_SUFFIX)], BASELINE_OFFSET
    table = {"ssl4eo-s12-l1c": (S2_L1C_MEAN, S2_L1C_STD), "ssl4eo-s12-l2a": (S2_L2A_MEAN, S2_L2A_STD)}
    if base in table and len(table[base][0]) == bands:
        mean, std = table[base]
        return tuple(m - shift for m in mean), tuple(std)
    if name == "identity":
        return (0.0,) * bands, (1.0,) * bands
    return None


__all__ = ["BASELINE_OFFSET", "NO_OFFSET_SUFFIX", "S2_L1C_MEAN", "S2_L1C_STD", "S2_L2A_MEAN", "S2_L2A_STD",
           "WITH_OFFSET_NAMES", "preset_stats"]
