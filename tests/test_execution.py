"""The execution seam (issue 14): streams are the same bytes however their units run: one after
the other, two encodes at once in one process, or on another process's workers; a stack and a
model travel to a worker by what they are (files reopened lazily; name, quality, weights hash)."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import terracodec
from terracodec.api.workers import ModelSpec
from terracodec.io.raster import read_stack

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


def test_two_encodes_at_once_give_the_bytes_of_one_after_the_other() -> None:
    alone = {m: terracodec.encode(SAMPLE[:3], model=m, tile_size=64) for m in ("tec-fp-s2l1c", "tec-tt-small")}
    together: dict[str, bytes] = {}

    def run(model: str) -> None:
        together[model] = terracodec.encode(SAMPLE[:3], model=model, tile_size=64)

    threads = [threading.Thread(target=run, args=(m,)) for m in alone]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_a_stack_pickles_without_its_open_files() -> None:
    with read_stack(SAMPLE[:2]) as stack:
        first = stack.read(1, 10, 20, 30, 40)
        copy = pickle.loads(pickle.dumps(stack))
    assert np.array_equal(copy.read(1, 10, 20, 30, 40), first)  # reopened on its first read
    copy.close()


@pytest.mark.slow
def test_units_on_another_process_give_the_same_bytes_and_pixels(tmp_path) -> None:
    """A `concurrent.futures` process pool (a Dask client takes the same calls): each worker
    loads the model once by (name, quality, weights hash) and reopens the inputs itself."""
    for model in ("tec-fp-s2l1c", "tec-tt-small"):
        serial = terracodec.encode(SAMPLE[:2], model=model, tile_size=64)
        with ProcessPoolExecutor(2) as pool:
            remote = terracodec.encode(SAMPLE[:2], model=model, tile_size=64, executor=pool)
            assert remote == serial, model
            path = tmp_path / f"{model}.tec"
            path.write_bytes(serial)
            pixels = terracodec.decode(path, executor=pool).pixels
        assert np.array_equal(pixels, terracodec.decode(serial).pixels), model
    assert torch.get_num_threads() >= 1


def test_a_thread_pool_as_executor_leaves_the_thread_count_alone() -> None:
    before = torch.get_num_threads()
    with ThreadPoolExecutor(2) as pool:
        stream = terracodec.encode(SAMPLE[:1], model="tec-fp-s2l1c", tile_size=64, executor=pool)
    assert stream == terracodec.encode(SAMPLE[:1], model="tec-fp-s2l1c", tile_size=64)
    assert torch.get_num_threads() == before


def test_a_model_travels_by_name_and_hash() -> None:
    from terracodec.zoo import load_model

    codec = load_model("tec-fp-s2l1c", 2)
    spec = pickle.loads(pickle.dumps(ModelSpec.of(codec)))
    assert spec.instance is None and (spec.name, spec.quality) == ("tec-fp-s2l1c", 2)
    assert spec.load().weights_hash() == codec.weights_hash()
