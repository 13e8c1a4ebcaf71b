"""Outputs that never cost the user data (issue 13, items 3, 10 and 15): no input and no existing
file replaced without `--overwrite`, the umask's mode, hidden `.part` temporaries removed on
errors and signals, data flushed before the rename, one line when the disk is full, series of
hundreds of frames under a small open-file limit, start-up without torch."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import terracodec
from terracodec.cli.main import main
from terracodec.errors import InputError
from terracodec.io.atomic import AtomicOutputs

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))
TEC = [sys.executable, "-m", "terracodec.cli.main"]


def tec(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 1, result.output
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and pattern in err, err


# ----------------------------------------------------------------------------- item 3
def test_decode_never_replaces_an_existing_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(SAMPLE[0], "x.tif")
    original = Path("x.tif").read_bytes()
    assert tec("encode", "x.tif", "-o", "s.tec", "-q").exit_code == 0
    _one_line_error(tec("decode", "s.tec", "-o", "."), "exists")
    assert Path("x.tif").read_bytes() == original
    _one_line_error(tec("encode", "x.tif", "-o", "s.tec"), "exists")
    assert tec("decode", "s.tec", "-o", ".", "--overwrite").exit_code == 0  # asked for
    assert Path("x.tif").read_bytes() != original
    assert not list(Path(".").glob(".*part*"))


def test_an_input_is_never_an_output(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(SAMPLE[0], "x.tif")
    original = Path("x.tif").read_bytes()
    for extra in ([], ["--overwrite"]):
        _one_line_error(tec("encode", "x.tif", "-o", "x.tif", *extra), "input")
        _one_line_error(tec("encode", "x.tif", "-o", "./sub/../x.tif", *extra), "input")
    assert Path("x.tif").read_bytes() == original
    assert tec("encode", "x.tif", "-o", "s.tec", "-q").exit_code == 0
    _one_line_error(tec("decode", "s.tec", "-o", "s.tec", "--overwrite"), "s.tec")
    with pytest.raises(InputError, match="input"):
        terracodec.encode(["x.tif"], "x.tif", overwrite=True)


# ----------------------------------------------------------------------------- item 10
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_umask_mode(tmp_path, umask) -> None:
    old = os.umask(umask)
    try:
        stream = tmp_path / "s.tec"
        terracodec.encode(SAMPLE[0], stream, model="tec-fp-tiny")
        out = tmp_path / "out.tif"
        out.write_bytes(b"old")
        os.chmod(out, 0o644)
        terracodec.decode(stream, out, overwrite=True)
        cog = tmp_path / "cog.tif"
        terracodec.decode(stream, cog, cog=True)
    finally:
        os.umask(old)
    for path in (stream, out, cog):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


# ----------------------------------------------------------------------------- item 15
def test_temporaries_are_hidden_parts_and_flushed(tmp_path, monkeypatch) -> None:
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    with AtomicOutputs() as outputs:
        temp = outputs.temp_for(tmp_path / "a.tif")
        assert temp.name.startswith(".a.tif.") and temp.name.endswith(".part")
        temp.write_bytes(b"data")
        assert not list(tmp_path.glob("*.tif"))
    assert (tmp_path / "a.tif").read_bytes() == b"data" and len(synced) >= 2  # file, directory
    with pytest.raises(RuntimeError):
        with AtomicOutputs() as outputs:
            outputs.temp_for(tmp_path / "b.tif").write_bytes(b"half")
            raise RuntimeError("failed midway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]


def _big_input(tmp_path: Path) -> Path:
    """A 13-band scene large enough to be still coding when a signal arrives."""
    with rasterio.open(SAMPLE[0]) as ds:
        px, profile = ds.read(), dict(ds.profile)
    big = np.tile(px, (1, 12, 12))
    profile.update(height=big.shape[1], width=big.shape[2])
    path = tmp_path / "big.tif"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(big)
        ds.descriptions = tuple(rasterio.open(SAMPLE[0]).descriptions)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_leaves_nothing_behind(tmp_path, sig, code) -> None:
    src = _big_input(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(TEC + ["encode", str(src), "-o", str(out / "big.tec"), "--tile-size", "64"],
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(out.glob(".*.part")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.decode().strip().splitlines()[-1].startswith("error: ")
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path) -> None:
    """A real write failure: the file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the
    kernel refuse the write with EFBIG, as a full disk refuses with ENOSPC."""
    stream = tmp_path / "s.tec"
    terracodec.encode(_big_input(tmp_path), stream, model="tec-fp-s2l1c")
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
            "from terracodec.cli.main import main; main(sys.argv[1:])")
    out = tmp_path / "out"
    for args in (["decode", str(stream), "-o", str(out / "d.tif")],
                 ["encode", str(tmp_path / "big.tif"), "-o", str(out / "e.tec")]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: cannot write"), r.stderr
        assert "File too large" in lines[0]
        assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.slow
def test_hundreds_of_frames_under_a_small_open_file_limit(tmp_path) -> None:
    with rasterio.open(SAMPLE[0]) as ds:
        px, profile = ds.read(window=((0, 16), (0, 16))), dict(ds.profile)
        names = ds.descriptions
    profile.update(height=16, width=16, transform=rasterio.open(SAMPLE[0]).transform)
    paths = []
    for i in range(300):
        path = tmp_path / f"f{i:03d}.tif"
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(px)
            ds.descriptions = names
        paths.append(str(path))
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)); "
            "from terracodec.cli.main import main; main(sys.argv[1:])")
    r = subprocess.run([sys.executable, "-c", code, "encode", *paths, "-o", str(tmp_path / "s.tec"),
                        "--model", "tec-fp-tiny", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert terracodec.info(tmp_path / "s.tec")["frames"] == 300


def test_help_and_info_do_not_import_torch(tmp_path) -> None:
    stream = tmp_path / "s.tec"
    terracodec.encode(SAMPLE[0], stream, model="tec-fp-tiny")
    code = ("import sys; from terracodec.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    for args in (["--help"], ["info", str(stream)], ["info", str(stream), "--json"], ["encode", "--help"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (args, r.stderr[-500:])
