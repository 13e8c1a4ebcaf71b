"""GeoTIFFs out (rasterio), window by window, with every piece of georeferencing and metadata.

`RasterWriter` writes windows into a temporary tiled GeoTIFF and leaves it to `AtomicOutputs`
to move it into place (converting to a Cloud-Optimised GeoTIFF first when asked) on success.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from terracodec.errors import InputError
from terracodec.io.atomic import AtomicOutputs
from terracodec.io.meta import FrameMeta, Grid


def _creation_options(dtype: np.dtype, block: int) -> dict:
    return {
        "driver": "GTiff", "tiled": True, "blockxsize": block, "blockysize": block,
        "compress": "deflate", "predictor": 3 if dtype.kind == "f" else 2, "BIGTIFF": "IF_SAFER",
    }


def _os_reason(temp: Path) -> str | None:
    """Why the OS refuses writes to `temp` (a temporary file, removed afterwards anyway): a
    probe write of 64 KiB, whose error names the cause (disk full, file size limit, ...)."""
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        return exc.strerror
    try:
        os.write(fd, bytes(1 << 16))
        os.fsync(fd)
    except OSError as exc:
        return exc.strerror
    finally:
        os.close(fd)
    return None


def _write_error(path: Path, exc: BaseException, temp: Path | None = None) -> InputError:
    """One line for a failed write, with the OS's reason (disk full, ...): GDAL's message is
    often only "Write failed" (libtiff printed the reason), so the OS is asked again."""
    reason = _os_reason(temp) if temp is not None and temp.exists() else None
    text = (str(exc).splitlines() or ["write failed"])[0][:200]
    return InputError(f"cannot write {path}: {reason or text}")


class RasterWriter:
    """Writes one GeoTIFF window by window; the file appears only on `commit` of `outputs`."""

    def __init__(
        self, path: str | os.PathLike, grid: Grid, meta: FrameMeta, outputs: AtomicOutputs,
        *, cog: bool = False, block: int = 256,
    ) -> None:
        self.path, self._cog, self._outputs = Path(path), cog, outputs
        dtype = np.dtype(grid.dtype)
        # GTiff (and COG) blocks must be multiples of 16 and need not exceed the image.
        block = max(16, min(block, 16 * math.ceil(max(grid.height, grid.width) / 16)))
        # COG is a copy-only driver: a plain GeoTIFF (scratch) first, converted at close
        outputs.check_target(self.path)
        self._temp = outputs.temp_for(self.path, scratch=cog)
        profile = dict(
            _creation_options(dtype, block), height=grid.height, width=grid.width,
            count=grid.count, dtype=dtype.name,
            crs=CRS.from_wkt(grid.crs_wkt) if grid.crs_wkt else None,
            transform=grid.affine(), nodata=meta.nodata,
        )
        if cog:
            profile.update(compress="none", predictor=1)
        try:
            self._ds = rasterio.open(self._temp, "w", **profile)
            self._write_meta(grid, meta)
        except (RasterioError, OSError) as exc:
            raise _write_error(self.path, exc, self._temp) from None

    def _write_meta(self, grid: Grid, meta: FrameMeta) -> None:
        ds = self._ds
        if grid.gcps:
            crs = CRS.from_wkt(grid.gcp_crs_wkt) if grid.gcp_crs_wkt else None
            ds.gcps = ([GroundControlPoint(row=r, col=c, x=x, y=y, z=z) for r, c, x, y, z in grid.gcps], crs)
        if meta.tags:
            ds.update_tags(**meta.tags)
        for i in range(ds.count):
            if i < len(meta.descriptions) and meta.descriptions[i]:
                ds.set_band_description(i + 1, meta.descriptions[i])
            if i < len(meta.band_tags) and meta.band_tags[i]:
                ds.update_tags(i + 1, **meta.band_tags[i])
            if i < len(meta.units) and meta.units[i]:
                ds.set_band_unit(i + 1, meta.units[i])
        if len(meta.scales) == ds.count and any(s != 1.0 for s in meta.scales):
            ds.scales = meta.scales
        if len(meta.offsets) == ds.count and any(o != 0.0 for o in meta.offsets):
            ds.offsets = meta.offsets

    def write(self, pixels: np.ndarray, row_off: int, col_off: int) -> None:
        """Write a [C, h, w] block at (row_off, col_off)."""
        c, h, w = pixels.shape
        try:
            self._ds.write(pixels, window=Window(col_off, row_off, w, h))
        except (RasterioError, OSError) as exc:
            raise _write_error(self.path, exc, self._temp) from None

    def abandon(self) -> None:
        """Close the dataset if it is still open (after an error; `outputs` removes the file)."""
        if not self._ds.closed:
            try:
                self._ds.close()
            except (RasterioError, OSError):
                pass

    def close(self) -> None:
        """Finish the temporary file (convert to COG if asked); `outputs` still has to commit it."""
        try:
            self._ds.close()
            if self._cog:
                plain, self._temp = self._temp, self._outputs.temp_for(self.path)
                rasterio.shutil.copy(
                    plain, self._temp, driver="COG", compress="DEFLATE",
                    predictor="YES", blocksize=512, BIGTIFF="IF_SAFER",
                )
                self._outputs.discard(plain)
        except (RasterioError, OSError) as exc:
            raise _write_error(self.path, exc, self._temp) from None


def write_raster(
    path: str | os.PathLike, pixels: np.ndarray, grid: Grid, meta: FrameMeta, *, cog: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a whole [C, H, W] array as one GeoTIFF (atomically)."""
    with AtomicOutputs(overwrite=overwrite) as outputs:
        writer = RasterWriter(path, grid, meta, outputs, cog=cog)
        try:
            writer.write(pixels, 0, 0)
            writer.close()
        finally:
            writer.abandon()
    return Path(path)


__all__ = ["RasterWriter", "write_raster"]
