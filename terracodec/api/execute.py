"""Running work units: on this process's threads (the default), or on any executor.

In-process, units run as tasks of `terracodec.parallel.run_tasks` in batches of `budget()`,
each on one intra-op thread (the container reader and the sinks are shared under a lock).
With `executor=` (anything with `submit(fn, *args)` returning futures with `.result()`: a
`concurrent.futures` pool, a Dask `Client`), each unit is a picklable job (`EncodeJob`,
`DecodeJob`) that carries where to read (a stack that reopens its files lazily, the stream's
path or bytes), the header and the model by (name, quality, weights file, weights hash); a
worker loads each model once (`terracodec.api.workers`). Results come back in plan order
either way, so the bytes of a stream never depend on how, or where, its units ran.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from terracodec.api.plan import Unit, float_threads_of, frame_normalizers
from terracodec.api.units import check_patches, decode_unit, encode_unit
from terracodec.api.workers import ModelSpec
from terracodec.container import ContainerReader, TileRecord
from terracodec.header import StreamHeader
from terracodec.parallel import budget, chunks, run_tasks

#: Jobs in flight at once on an executor (bounds what waits in memory).
IN_FLIGHT = 64


@dataclass
class EncodeJob:
    """Code one unit anywhere: everything a worker needs, picklable."""

    source: Any
    header: dict
    model: ModelSpec

    def __call__(self, unit: Unit) -> list[TileRecord]:
        header = StreamHeader.from_json(self.header)
        return encode_unit(unit, self.source, header, self.model.load())


@dataclass
class DecodeJob:
    """Decode one unit anywhere: the stream (path or bytes), what is wanted, the model."""

    stream: Any
    model: ModelSpec
    wanted: dict
    want: str

    def __call__(self, unit: Unit) -> list[tuple[int, Any, Any]]:
        from terracodec.api.stream import open_stream

        out: list[tuple[int, Any, Any]] = []
        reader, header = open_stream(self.stream)
        with reader:
            decode_unit(unit, reader.read_tile, header, self.model.load(), self.wanted, self.want,
                        lambda k, t, r: out.append((k, t, r)))
        return out


def _on_executor(executor: Any, job: Callable[[Unit], Any], units: list[Unit]) -> Iterator[Any]:
    """`job(unit)` of every unit on `executor`, results in plan order, at most IN_FLIGHT queued."""
    for part in chunks(len(units), IN_FLIGHT):
        futures = [executor.submit(job, u) for u in units[part]]
        for f in futures:
            yield f.result()


def encode_units(units: list[Unit], source: Any, header: StreamHeader, codec: Any,
                 executor: Any = None, model: ModelSpec | None = None) -> Iterator[tuple[Unit, list[TileRecord]]]:
    """(unit, its records) for every unit, in plan order."""
    if executor is not None:
        job = EncodeJob(source, header.to_json(), model or ModelSpec.of(codec))
        yield from zip(units, _on_executor(executor, job, units))
        return
    norms, floats = frame_normalizers(header), float_threads_of(header)
    lock = threading.Lock()

    def read(frame: int, *window: int) -> Any:
        with lock:  # the stack's handles are shared
            return source.read(frame, *window)

    reader = _Locked(read, source)
    for batch in _batches(units):
        results = run_tasks([lambda u=u: encode_unit(u, reader, header, codec, norms) for u in batch],
                            float_threads=floats)
        yield from zip(batch, results)


def decode_units(units: list[Unit], reader: ContainerReader, stream: Any, header: StreamHeader, codec: Any,
                 wanted: dict[int, int], want: str, emit: Callable[[int, Any, Any], None],
                 executor: Any = None, model: ModelSpec | None = None) -> None:
    """Decode every unit; `emit(k, tile, result)` for each wanted frame (under a lock)."""
    check_patches(units, reader.read_tile, header, codec)
    if executor is not None:
        job = DecodeJob(stream, model or ModelSpec.of(codec), wanted, want)
        for results in _on_executor(executor, job, units):
            for k, t, r in results:
                emit(k, t, r)
        return
    norms, floats = frame_normalizers(header), float_threads_of(header)
    lock = threading.Lock()

    def read(frame: int, tile: int) -> TileRecord:
        with lock:
            return reader.read_tile(frame, tile)

    def locked_emit(k: int, t: Any, r: Any) -> None:
        with lock:
            emit(k, t, r)

    for batch in _batches(units):
        run_tasks([lambda u=u: decode_unit(u, read, header, codec, wanted, want, locked_emit, norms)
                   for u in batch], float_threads=floats)


def _batches(units: list[Unit]) -> Iterable[list[Unit]]:
    return (units[s] for s in chunks(len(units), max(1, budget())))


class _Locked:
    """A stack whose `read` goes through a lock (the rest is the stack's)."""

    def __init__(self, read: Callable[..., Any], stack: Any) -> None:
        self.read, self._stack = read, stack

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stack, name)


__all__ = ["DecodeJob", "EncodeJob", "IN_FLIGHT", "decode_units", "encode_units"]
