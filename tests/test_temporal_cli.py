"""`tec` with the temporal model: registry name + a v1 TT checkpoint via --weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from click.testing import CliRunner

from terracodec.cli.main import main

TT_WEIGHTS = Path(__file__).parent / "fixtures" / "reference_tt" / "tt.pt"


def _tec(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_tt_series_round_trip_through_the_cli(shared_data, tmp_path):
    frames = sorted((shared_data / "terramind_examples" / "S2L2A").glob("282D*.tif"))[:1] * 2
    out = tmp_path / "series.tec"
    done = _tec("encode", *frames, "-o", out, "--model", "tec-tt", "--quality", "3", "--weights", TT_WEIGHTS)
    assert done.exit_code == 0, done.output

    refused = _tec("decode", out, "-o", tmp_path / "no-weights")
    assert refused.exit_code != 0 and "--weights" in refused.stderr
    assert not (tmp_path / "no-weights").exists()

    done = _tec("decode", out, "-o", tmp_path / "dec", "--weights", TT_WEIGHTS)
    assert done.exit_code == 0, done.output
    written = sorted((tmp_path / "dec").glob("*.tif"))
    assert len(written) == 2
    with rasterio.open(frames[0]) as src, rasterio.open(written[1]) as dec:
        assert (dec.count, dec.shape, dec.dtypes, dec.crs, dec.transform) == (
            src.count, src.shape, src.dtypes, src.crs, src.transform)
        assert np.isfinite(dec.read().astype(np.float64)).all()


def test_temporal_models_without_weights_fail_in_one_line(tmp_path):
    frame = Path(__file__).parents[1] / "terracodec" / "data" / "sample"
    first = sorted(frame.glob("*.tif"))[0]
    result = _tec("encode", first, "-o", tmp_path / "x.tec", "--model", "tec-tt-l1c")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: model tec-tt-l1c ships no weights")
    assert not (tmp_path / "x.tec").exists()
