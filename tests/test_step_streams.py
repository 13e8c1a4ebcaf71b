"""A TEC-TT tile-frame's steps in one chained rANS stream (payload version 4), and the version 1
payloads (one stream per step) written before it, which must still decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import terracodec
from _tinytt import tiny_tt
from terracodec.container import CHAINED_STEPS_MAJOR
from terracodec.entropy.rans import rans_encode
from terracodec.entropy.rans_stream import varint_decode, varint_encode
from terracodec.errors import CorruptStreamError
from terracodec.models.payload import STEPS_PAYLOAD_VERSION
from terracodec.temporal.step_streams import SeparateSteps, StepWriter, step_reader, subtable

LEGACY = Path(__file__).resolve().parent / "data" / "legacy"
FLEXTEC_WEIGHTS = Path(__file__).resolve().parent / "fixtures" / "reference_flextec" / "flextec.pt"
SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


def _steps(table, sizes: list[int], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random (symbols, rows) per step, escapes included; a size 0 is a step with nothing sent."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        rows = torch.randint(0, table.quantized_cdf.shape[0], (n,), generator=gen)
        symbols = torch.randint(-40, 40, (n,), generator=gen, dtype=torch.int32)
        symbols[::37] = 1 << 20
        out.append((symbols, rows))
    return out


def _read_all(table, payload: bytes, steps) -> list[torch.Tensor]:
    k, reader = step_reader(payload)
    assert k == len(steps)
    got = [reader.read(table, rows) for _, rows in steps]
    reader.finish()
    return got


@pytest.mark.parametrize("sizes", [[5], [300, 0, 2000, 1], [0, 0], [], [6000] * 3])
def test_chained_steps_round_trip_step_by_step(sizes) -> None:
    """Each step read with a sub-table of its own rows gives back what the writer coded with one
    sub-table of every step's rows."""
    table = tiny_tt().entropy_model.bottleneck
    steps = _steps(table, sizes, seed=len(sizes))
    writer = StepWriter(table)
    for symbols, rows in steps:
        writer.add(symbols, rows)
    payload = writer.payload(len(steps))
    assert payload[:2] == bytes((STEPS_PAYLOAD_VERSION, len(steps)))
    if sum(sizes):  # one lane, even where an image model's chain would use several
        (n, lanes), _ = varint_decode(np.frombuffer(payload[2:], np.uint8), 0, 2, "chain header")
        assert n == sum(sizes) and lanes == 1
    got = _read_all(table, payload, steps)
    assert all(torch.equal(g, s) for g, (s, _) in zip(got, steps))


def test_damaged_chained_steps_are_detected() -> None:
    table = tiny_tt().entropy_model.bottleneck
    steps = _steps(table, [400, 700, 50], seed=4)
    writer = StepWriter(table)
    for symbols, rows in steps:
        writer.add(symbols, rows)
    payload = writer.payload(3)
    for end in range(2, len(payload), max(1, len(payload) // 40)):
        with pytest.raises(CorruptStreamError):
            _read_all(table, payload[:end], steps)
    with pytest.raises(CorruptStreamError):
        _read_all(table, payload + b"\x00", steps)
    k, reader = step_reader(payload)
    for _, rows in steps[:2]:
        reader.read(table, rows)
    with pytest.raises(CorruptStreamError, match="more symbols"):  # a step left unread
        reader.finish()


def _old_step_stream(table, symbols: torch.Tensor, rows: torch.Tensor) -> bytes:
    """What a version 1 payload held per step: the 1-lane, 1-chunk stream without its version,
    count, lanes and chunk size (the reference form, as written before version 4)."""
    index, cdf, lengths, offsets = subtable(table, rows)
    n = symbols.numel()
    full = rans_encode(symbols, index, cdf, lengths, offsets, lanes=1, chunk_symbols=n)
    buf = np.frombuffer(full, np.uint8)
    fields, pos = varint_decode(buf, 1, 4, "header")
    return varint_encode(fields[3:]) + full[pos:]


def test_version_1_step_streams_still_decode() -> None:
    table = tiny_tt().entropy_model.bottleneck
    steps = _steps(table, [1, 300, 2000], seed=5)
    streams = [_old_step_stream(table, s, r) for s, r in steps]
    reader = SeparateSteps(streams)
    assert all(torch.equal(reader.read(table, r), s) for s, r in steps)
    data = streams[1]
    for end in range(0, len(data), max(1, len(data) // 40)):
        with pytest.raises(CorruptStreamError):
            SeparateSteps([data[:end]]).read(table, steps[1][1])
    with pytest.raises(CorruptStreamError):
        SeparateSteps([data + b"\x00"]).read(table, steps[1][1])
    with pytest.raises(CorruptStreamError, match="no tokens"):
        SeparateSteps([b"\x01"]).read(table, torch.zeros(0, dtype=torch.int64))


@pytest.mark.parametrize("name", ["tt_small_separate_steps_2frames", "flextec_k3_separate_steps_2frames",
                                  "tt_small_cloudy_separate_steps_2frames"])
def test_legacy_version_1_files_decode_to_their_latents(name: str) -> None:
    """Files written before version 4 (tests/data/legacy/make_separate_step_streams.py): TEC-TT,
    FlexTEC at k = 3 (the published-architecture test checkpoint), and a frame with tokens
    filled under clouds (version 3 around version 1)."""
    path = LEGACY / f"{name}.tec"
    kw = {"weights": str(FLEXTEC_WEIGHTS)} if name.startswith("flextec") else {}
    assert terracodec.info(path)["format_version"] in ("5.0", "6.0", "7.0")  # majors before 8
    lat, saved = terracodec.decode_latents(path, **kw), np.load(path.with_suffix(".npz"))
    assert np.array_equal(lat.y_hat, saved["y"]) and np.array_equal(lat.features, saved["f"])


def test_new_streams_chain_the_steps_and_are_smaller() -> None:
    """The same frames coded now: major 8, version 4 payloads, the same latents as the version 1
    file, and fewer bytes (one coder flush per tile-frame instead of 16)."""
    from terracodec.container import ContainerReader

    legacy = LEGACY / "tt_small_separate_steps_2frames.tec"
    stream = terracodec.encode([str(p) for p in SAMPLE[:2]], None, model="tec-tt-small")
    assert terracodec.info(stream)["format_version"] == f"{CHAINED_STEPS_MAJOR}.0"
    with ContainerReader(stream) as reader:
        assert {reader.read_tile(*key).code[0] for key in reader.entries} == {STEPS_PAYLOAD_VERSION}
    assert np.array_equal(terracodec.decode_latents(stream).y_hat, np.load(legacy.with_suffix(".npz"))["y"])
    assert len(stream) < legacy.stat().st_size - 150
