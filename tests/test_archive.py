"""`tec archive` (serial, local worker processes, a real Dask `LocalCluster`) and `tec verify`, on
real rasters: byte-identical outputs whatever the parallelism, a correct manifest, one bad input
recorded without stopping the rest, resumable reruns."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import terracodec
from terracodec.cli.main import main

SAMPLE = Path(terracodec.__file__).resolve().parent / "data" / "sample"


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


@pytest.fixture()
def source(shared_data, tmp_path) -> Path:
    """Real scenes in nested folders, plus one file that is not a raster."""
    src = tmp_path / "src"
    (src / "l2a").mkdir(parents=True)
    (src / "l1c" / "deeper").mkdir(parents=True)
    tm = shared_data / "terramind_examples"
    shutil.copy(tm / "S2L2A" / "282D_485L_3_3.tif", src / "l2a" / "a.tif")
    shutil.copy(tm / "S2L1C" / "637U_59R_1_3.tif", src / "l1c" / "b.tif")
    shutil.copy(SAMPLE / "S2L1C_20150711.tif", src / "l1c" / "deeper" / "c.tiff")
    (src / "l1c" / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    (src / "notes.txt").write_text("not an input")
    return src


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _reference(src: Path, tmp_path: Path) -> dict[str, bytes]:
    """Each input through plain `tec encode` with default settings."""
    ref = {}
    for p in sorted(src.rglob("*.tif*")):
        if p.name == "broken.tif":
            continue
        out = tmp_path / "ref" / f"{p.stem}.tec"
        code, text = _run(["encode", str(p), "-o", str(out), "-q", "--overwrite"])
        assert code == 0, text
        ref[str(p.relative_to(src).with_suffix(".tec"))] = out.read_bytes()
    return ref


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.tec"))}


def test_serial_archive_manifest_and_resume(source, tmp_path):
    out = tmp_path / "out"
    code, text = _run(["archive", str(source), "--out", str(out)])
    assert code == 1, text  # one input failed
    assert "failed" in text and "broken.tif" in text and "archived 3 of 4" in text
    assert _outputs(out) == _reference(source, tmp_path)
    records = _manifest(out)
    assert len(records) == 4
    by_source = {Path(r["source"]).name: r for r in records}
    bad = by_source["broken.tif"]
    assert bad["status"] == "error" and "not a raster" in bad["error"] and bad["output"].endswith("broken.tec")
    assert not Path(bad["output"]).exists()
    for name in ("a.tif", "b.tif", "c.tiff"):
        r = by_source[name]
        assert r["status"] == "ok" and r["action"] == "encoded" and r["error"] is None
        data = Path(r["output"]).read_bytes()
        assert r["bytes"] == len(data) and r["sha256"] == hashlib.sha256(data).hexdigest()
        assert r["bpppb"] > 0 and r["seconds"] >= 0 and r["model"].startswith("tec-")
    assert by_source["a.tif"]["model"] == "tec-fp-s2l2a" and by_source["b.tif"]["model"] == "tec-elic-s2l1c"

    # rerun after deleting one output, truncating another: exactly those are redone
    (out / "l2a" / "a.tec").unlink()
    b = out / "l1c" / "b.tec"
    b.write_bytes(b.read_bytes()[:-10])
    code, text = _run(["archive", str(source), "--out", str(out), "-q"])
    assert code == 1
    rerun = _manifest(out)[4:]
    actions = {Path(r["source"]).name: r["action"] for r in rerun}
    assert actions == {"a.tif": "encoded", "b.tif": "encoded", "c.tiff": "reused", "broken.tif": "failed"}
    assert _outputs(out) == _reference(source, tmp_path)
    code, _ = _run(["archive", str(source), "--out", str(out), "-q", "--force"])
    assert {r["action"] for r in _manifest(out)[8:] if r["status"] == "ok"} == {"encoded"}


def test_a_flipped_byte_is_redone(source, tmp_path):
    out = tmp_path / "out"
    _run(["archive", str(source / "l1c" / "deeper"), "--out", str(out), "-q"])
    target = out / "c.tec"
    good = target.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0x40
    target.write_bytes(bytes(data))
    code, text = _run(["verify", str(target)])
    assert code == 1 and "BAD" in text and "c.tec" in text
    code, _ = _run(["archive", str(source / "l1c" / "deeper"), "--out", str(out), "-q"])
    assert code == 0 and _manifest(out)[-1]["action"] == "encoded" and target.read_bytes() == good


def test_another_model_is_not_reused(source, tmp_path):
    out = tmp_path / "out"
    src = source / "l1c" / "deeper"
    _run(["archive", str(src), "--out", str(out), "-q"])
    code, text = _run(["archive", str(src), "--out", str(out), "-q", "--model", "tec-fp-tiny"])
    assert code == 0, text
    assert _manifest(out)[-1]["action"] == "encoded" and _manifest(out)[-1]["model"] == "tec-fp-tiny"


def test_series_by_folder_in_acquisition_order(tmp_path):
    src = tmp_path / "tile"
    src.mkdir()
    # copied under names that sort against their dates: the order must come from the dates
    for name, new in (("S2L1C_20150820.tif", "a.tif"), ("S2L1C_20150711.tif", "b.tif"), ("S2L1C_20150731.tif", "c.tif")):
        shutil.copy(SAMPLE / name, src / new)
    out = tmp_path / "out"
    code, text = _run(["archive", str(src), "--out", str(out), "--series-by", "folder", "-q"])
    assert code == 0, text
    info = terracodec.info(out / "tile.tec")
    assert [f["name"] for f in info["frame_info"]] == ["b.tif", "c.tif", "a.tif"]
    assert _manifest(out)[0]["frames"] == 3


@pytest.mark.slow
def test_local_worker_processes_give_the_same_bytes(source, tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    _run(["archive", str(source), "--out", str(serial), "-q"])
    code, text = _run(["archive", str(source), "--out", str(parallel), "-q", "--workers", "2"])
    assert code == 1, text
    assert _outputs(parallel) == _outputs(serial) and len(_outputs(serial)) == 3


@pytest.mark.slow
def test_dask_cluster_archive(source, tmp_path):
    """A real LocalCluster of two worker processes: the plan's units run there as Dask tasks."""
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        code, text = _run(["archive", str(source), "--out", str(out), "--scheduler", cluster.scheduler_address])
        assert code == 1, text
        with distributed.Client(cluster) as client:  # the units ran on the workers
            logs = client.run(lambda: __import__("sys").modules.get("terracodec.api.workers") is not None)
            assert all(logs.values())
        assert _outputs(out) == _reference(source, tmp_path)
        records = _manifest(out)
        assert sorted(r["status"] for r in records) == ["error", "ok", "ok", "ok"]
        # a rerun after deleting and truncating outputs redoes exactly those
        (out / "l2a" / "a.tec").unlink()
        c = out / "l1c" / "deeper" / "c.tec"
        c.write_bytes(c.read_bytes()[:100])
        code, _ = _run(["archive", str(source), "--out", str(out), "--scheduler", cluster.scheduler_address, "-q"])
        assert code == 1
    actions = {Path(r["source"]).name: r["action"] for r in _manifest(out)[4:]}
    assert actions == {"a.tif": "encoded", "b.tif": "reused", "c.tiff": "encoded", "broken.tif": "failed"}
    assert _outputs(out) == _reference(source, tmp_path)


def test_verify_reports_each_bad_file(tmp_path):
    good = tmp_path / "good.tec"
    terracodec.encode(str(SAMPLE / "S2L1C_20150711.tif"), good, model="tec-fp-tiny", tile_size=64)
    truncated = tmp_path / "truncated.tec"
    truncated.write_bytes(good.read_bytes()[:-50])
    junk = tmp_path / "junk.tec"
    junk.write_bytes(b"hello")
    code, text = _run(["verify", str(good)])
    assert code == 0 and text.startswith("ok") and "4 tiles" in text and "MB/s" in text
    code, text = _run(["verify", str(good), str(truncated), str(junk), "--json"])
    assert code == 1
    lines = [json.loads(line) for line in text.splitlines()]
    assert [v.get("ok") for v in lines[:3]] == [True, False, False]
    assert "truncated" in lines[1]["error"] or "corrupt" in lines[1]["error"]
    assert "not a .tec file" in lines[2]["error"]
    assert lines[3]["files"] == 3 and lines[3]["bad"] == 2


def test_archive_refuses_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("TERRACODEC_SCHEDULER_TIMEOUT", "2s")
    code, text = _run(["archive", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert code != 0 and "no such file or folder" in text and len(text.strip().splitlines()) == 1
    code, text = _run(["archive", str(SAMPLE), "--out", str(tmp_path / "o"), "--workers", "0"])
    assert code != 0 and "workers must be a positive integer" in text
    code, text = _run(["archive", str(SAMPLE), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"])
    assert code != 0 and "cannot reach the Dask scheduler" in text
