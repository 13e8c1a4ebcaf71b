"""Hostile and malformed `.tec` files: refused with one line and exit 1, in bounded time and
memory, never a traceback or an internal error (exit 2), never a silent decode of a forged header.

The files are real streams of the bundled sample, forged by `terracodec.forge` with every
checksum recomputed, so the reader's checks of meaning are what refuse them: forged dimensions
and counts, decompression bombs (tile patches, headers), malformed fields (issue 13, items 6,
7, 8, 12), and a seeded mutation loop (the fuzzing test).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import terracodec
from terracodec import forge, limits
from terracodec.cli.main import main
from terracodec.container import ContainerWriter
from terracodec.errors import CorruptStreamError, InputError

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


@pytest.fixture(scope="module")
def streams() -> dict[str, bytes]:
    return {
        "fp": terracodec.encode(SAMPLE[0], model="tec-fp-s2l1c", tile_size=64),
        "tt": terracodec.encode(SAMPLE[:2], model="tec-tt-small", tile_size=64),
    }


@pytest.fixture(scope="module")
def corpora(streams) -> dict[str, dict[str, bytes]]:
    return {kind: forge.corpus(data) for kind, data in streams.items()}


def _tec(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _assert_refused(result) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "internal error" not in err, err


#: Forgeries whose refusal takes over 10 s of a test run (pytest --durations=0).
SLOW_FORGERIES = {"header_bomb_under_cap"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_FORGERIES else n
                                  for n in forge.CORPUS_NAMES])
def test_forged_file_is_refused(name, corpora, tmp_path) -> None:
    for kind, files in corpora.items():
        path = tmp_path / f"{kind}.tec"
        path.write_bytes(files[name])
        start = time.perf_counter()
        if name not in forge.TILE_LEVEL:  # `info` reads no tile
            _assert_refused(_tec("info", path))
        _assert_refused(_tec("decode", path, "-o", tmp_path / "out"))
        assert time.perf_counter() - start < 60  # a runaway guard; benchmarks/hostile.py measures
        assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.slow
def test_seeded_mutations_fail_cleanly(streams, tmp_path) -> None:
    """The fuzzing test: 2 x 60 seeded forgeries; each decodes (a record forged with a valid
    CRC may) or is refused in one line, in bounded time, never an internal error."""
    rng = random.Random(20261202)
    for kind, data in streams.items():
        for i in range(60):
            path = tmp_path / f"{kind}_{i}.tec"
            path.write_bytes(forge.mutate(data, rng))
            start = time.perf_counter()
            for args in (["info", path], ["decode", path, "-o", tmp_path / f"out_{kind}_{i}"]):
                result = _tec(*args)
                assert result.exit_code in (0, 1), (kind, i, result.output)
                if result.exit_code:
                    _assert_refused(result)
            assert time.perf_counter() - start < 60, (kind, i)  # a runaway guard


_PEAK = """
import sys
from terracodec.cli.main import main
for path in sys.argv[2:]:
    for args in (["info", path], ["decode", path, "-o", sys.argv[1]]):
        try:
            main(args, standalone_mode=False)
        except BaseException as exc:
            assert getattr(exc, "exit_code", 1) == 1, (path, exc)
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_bombs_and_huge_claims_stay_under_1_5_gb(corpora, tmp_path) -> None:
    """Peak resident memory (VmHWM, one process for all cases, torch and a model loaded)."""
    files = []
    for name in ("patch_bomb_1g", "header_bomb_under_cap", "frames_under_cap", "dimensions_40000",
                 "huge_dimensions_small_tiles", "tile_size_4096"):
        path = tmp_path / f"{name}.tec"
        path.write_bytes(corpora["fp"][name])
        files.append(str(path))
    out = subprocess.run([sys.executable, "-c", _PEAK, str(tmp_path / "out"), *files],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) < 1536 * 1024  # kB


def test_writer_refuses_what_the_reader_would(tmp_path) -> None:
    import io

    with pytest.raises(InputError, match="not JSON compliant|finite"):
        ContainerWriter(io.BytesIO(), {"transform": [float("nan")]}, 1, 1)
    with pytest.raises(InputError, match="header of"):
        ContainerWriter(io.BytesIO(), {"pad": "a" * (limits.MAX_HEADER_JSON + 1)}, 1, 1)
    import numpy as np  # the API checks its inputs before the writer sees them

    x = np.full((13, 32, 32), 2000, np.uint16)
    with pytest.raises(InputError, match="transform"):
        terracodec.encode(x, model="tec-fp-tiny", transform=(1, 2))
    with pytest.raises(InputError, match="transform"):
        terracodec.encode(x, model="tec-fp-tiny", transform=(10, 0, float("nan"), 0, -10, 0))
    with pytest.raises(InputError, match="tile size"):
        terracodec.encode(x, model="tec-fp-tiny", tile_size=4096)


def test_large_declared_tiles_are_refused_by_the_reader(corpora) -> None:
    """Decoder memory follows the tile size, so the reader caps it (limits.MAX_TILE_SIZE)."""
    forged = corpora["fp"]["tile_size_4096"]
    with pytest.raises(CorruptStreamError, match="tile_size"):
        terracodec.info(forged)
    assert limits.MAX_TILE_SIZE == 1024
