"""Rate-distortion and speed benchmarks of terracodec models against classical codecs.

    from terracodec.bench import load_inputs, make_codecs, run_benchmark, bd_table
    samples = load_inputs(["city1/", "city2/"], series=True, crop=256)
    codecs, skipped = make_codecs(["jpeg2000", "jpegxl", "tec-fp-tiny"])
    result = run_benchmark(samples, codecs)
    bd = bd_table(result, anchor="jpeg2000")

`tec bench` is the command-line face of the same calls. Parts: `metrics` (rate, PSNR, MS-SSIM,
SAM, Bjontegaard), `base` (the codec interface), `classical` / `video` / `learned` (the
codecs), `data` (inputs), `measure` (time and memory), `runner` (the sweep), `report` (files,
plots, tables).
"""

from terracodec.bench.base import Codec
from terracodec.bench.data import Sample, load_inputs
from terracodec.bench.registry import codec_names, make_codecs, unavailable_codecs
from terracodec.bench.report import bd_table, write_outputs
from terracodec.bench.runner import run_benchmark

__all__ = [
    "Codec", "Sample", "load_inputs", "codec_names", "make_codecs", "unavailable_codecs",
    "bd_table", "write_outputs", "run_benchmark",
]
