"""`TerracodecCodec`: Zarr chunks stored as `.tec` streams, through zarr and through xarray.

Real pixels: crops of the bundled 13-band Sentinel-2 L1C sample. The codec is lossy, so every
chunk is compared with what `terracodec.decode(terracodec.encode(chunk))` gives, exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from zarr.storage import LocalStore

import terracodec
from terracodec.errors import InputError
from terracodec.zarr_codec import ChunkLayoutError, TerracodecCodec

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, list[str]]:
    """Two dates [2, 13, 101, 100] uint16 DN and the band names."""
    frames = []
    for path in SAMPLE[:2]:
        with rasterio.open(path) as src:
            frames.append(src.read())
            names = list(src.descriptions)
    return np.stack(frames), names


def reference(chunk: np.ndarray, names: list[str], **kw) -> np.ndarray:
    """A chunk as the codec gives it back: one stream of it, decoded."""
    stream = terracodec.encode(np.ascontiguousarray(chunk), None, band_names=names, **kw)
    return terracodec.decode(stream).pixels.reshape(chunk.shape)


def chunk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != "zarr.json")


def test_round_trip_is_the_per_chunk_decode_and_compresses(scene, tmp_path):
    pixels, names = scene
    image = pixels[0]  # 13 x 101 x 100: edge chunks are padded by zarr with the fill value
    codec = TerracodecCodec(model="tec-fp-s2l1c", quality=1, tile_size=32, baseline_offset=False)
    z = zarr.create_array(store=LocalStore(tmp_path / "a.zarr"), shape=image.shape, dtype="uint16",
                          chunks=(13, 48, 48), serializer=codec, compressors=None, fill_value=0)
    z[:] = image
    back = zarr.open_array(store=LocalStore(tmp_path / "a.zarr"))[:]
    assert back.dtype == np.uint16 and back.shape == image.shape
    for r in range(0, 101, 48):
        for c in range(0, 100, 48):
            chunk = np.zeros((13, 48, 48), np.uint16)
            part = image[:, r : r + 48, c : c + 48]
            chunk[:, : part.shape[1], : part.shape[2]] = part
            expected = reference(chunk, names, model="tec-fp-s2l1c", quality=1, tile_size=32,
                                 baseline_offset=False)  # 2015: before the +1000 DN offset
            np.testing.assert_array_equal(back[:, r : r + 48, c : c + 48],
                                          expected[:, : part.shape[1], : part.shape[2]])
    assert not np.array_equal(back, image)  # lossy, as documented
    assert image.nbytes / chunk_bytes(tmp_path / "a.zarr") > 4


def test_metadata_round_trip_and_discovery_by_name(scene, tmp_path):
    pixels, names = scene
    codec = TerracodecCodec(model="tec-fp-tiny", band_names=names, tile_size=32)
    root = tmp_path / "m.zarr"
    z = zarr.create_array(store=LocalStore(root), shape=(2, 13, 32, 32), dtype="uint16",
                          chunks=(1, 13, 32, 32), serializer=codec, compressors=None)
    z[:] = pixels[:, :, :32, :32]
    stored = json.loads((root / "zarr.json").read_text())["codecs"]
    assert stored == [{"name": "terracodec", "configuration": {
        "model": "tec-fp-tiny", "tile_size": 32, "baseline_offset": "auto", "quality": 1,
        "band_names": names}}]  # the model's default quality is written down
    reopened = zarr.open_array(store=LocalStore(root))
    assert reopened.serializer == TerracodecCodec(model="tec-fp-tiny", quality=1, band_names=names,
                                                  tile_size=32)
    assert TerracodecCodec.from_dict(codec.to_dict()) == codec
    assert zarr.registry.get_codec_class("terracodec") is TerracodecCodec
    (entry,) = entry_points(group="zarr.codecs", name="terracodec")
    assert entry.load() is TerracodecCodec
    script = ("import sys, zarr.registry as r; c = r.get_codec_class('terracodec'); "
              "print(c.__module__, 'terracodec.zarr_codec' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["terracodec.zarr_codec", "True"]  # loaded by zarr itself
    np.testing.assert_array_equal(
        reopened[1], reference(pixels[1, :, :32, :32], names, model="tec-fp-tiny", tile_size=32))


def test_xarray_to_zarr_and_open_zarr(scene, tmp_path):
    pixels, names = scene
    crop = pixels[:, :, :64, :96]
    ds = xr.Dataset({"reflectance": (("time", "band", "y", "x"), crop)},
                    coords={"band": np.array(names, dtype=object),
                            "time": np.array(["2015-07-11", "2015-07-31"], dtype="datetime64[ns]")})
    codec = TerracodecCodec(model="tec-fp-tiny", tile_size=32)
    ds.to_zarr(tmp_path / "x.zarr", zarr_format=3, consolidated=False, encoding={"reflectance": {
        "serializer": codec, "compressors": None, "chunks": (1, 13, 32, 48)}})
    back = xr.open_zarr(tmp_path / "x.zarr", consolidated=False)
    lazy = back["reflectance"]
    assert lazy.chunks == ((1, 1), (13,), (32, 32), (48, 48))  # dask chunks = zarr chunks
    assert lazy.encoding["serializer"] == TerracodecCodec(model="tec-fp-tiny", quality=1, tile_size=32)
    assert list(back.band.values) == names
    values = lazy.compute().values  # decoded chunk by chunk by Dask's threads
    for t in range(2):
        for r in (0, 32):
            for c in (0, 48):
                chunk = crop[t : t + 1, :, r : r + 32, c : c + 48]
                np.testing.assert_array_equal(values[t : t + 1, :, r : r + 32, c : c + 48],
                                              reference(chunk, names, model="tec-fp-tiny", tile_size=32))


@pytest.mark.parametrize("shape, chunks, dtype, model, match", [
    ((13, 64, 64), (6, 64, 64), "uint16", "tec-fp-tiny", "13 bands in one chunk"),
    ((12, 64, 64), (12, 64, 64), "uint16", "tec-fp-s2l1c", "13 bands in one chunk"),
    ((13, 64, 64), (13, 40, 64), "uint16", "tec-fp-tiny", "multiples of 16 px"),
    ((13, 64, 64), (13, 64, 64), "float64", "tec-fp-tiny", "not float64"),
    ((64, 64), (64, 64), "uint16", "tec-fp-tiny", "not 2-D"),
    ((13, 64, 64), (13, 64, 64), "uint16", "no-such-model", "no model named"),
    ((13, 64, 64), (13, 64, 64), "uint16", "tec-fp-v1", "needs a weights file"),
])
def test_refused_layouts_fail_before_writing(tmp_path, shape, chunks, dtype, model, match):
    root = tmp_path / "bad.zarr"
    with pytest.raises(ChunkLayoutError, match=match) as caught:
        zarr.create_array(store=LocalStore(root), shape=shape, chunks=chunks, dtype=dtype,
                          serializer=TerracodecCodec(model=model, tile_size=64), compressors=None)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, InputError)
    assert len(str(caught.value).splitlines()) == 1
    assert not (root / "zarr.json").exists()


def test_xarray_refuses_a_chunking_that_splits_the_bands(scene, tmp_path):
    ds = xr.Dataset({"reflectance": (("band", "y", "x"), scene[0][0, :, :32, :32])})
    encoding = {"reflectance": {"serializer": TerracodecCodec(model="tec-fp-tiny"),
                                "compressors": None, "chunks": (1, 32, 32)}}
    with pytest.raises(ChunkLayoutError, match="13 bands in one chunk"):
        ds.to_zarr(tmp_path / "b.zarr", zarr_format=3, consolidated=False, encoding=encoding)


def test_configuration_is_checked():
    with pytest.raises(InputError, match="band_names"):
        TerracodecCodec(band_names="B01")
    with pytest.raises(InputError, match="tile size"):
        TerracodecCodec(tile_size=0)
    with pytest.raises(InputError, match="baseline_offset"):
        TerracodecCodec(baseline_offset="sometimes")
    with pytest.raises(InputError, match="unknown keys: lossless"):
        TerracodecCodec.from_dict({"name": "terracodec", "configuration": {"lossless": True}})
