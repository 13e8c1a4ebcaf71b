"""Small but structurally real Sentinel-2 products for tests: real band data (OSCD L1C at native
resolutions, TerraMind L2A block-averaged to 20 and 60 m) written as JPEG2000 through rasterio,
in the SAFE layout with a minimal valid product metadata file (MTD_MSIL1C.xml / MTD_MSIL2A.xml)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS
from terracodec.io.safe import NATIVE_RESOLUTION

_NS = {"L1C": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd",
       "L2A": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"}


def oscd_bands(city_dir: Path, date: int = 1) -> tuple[dict[str, np.ndarray], dict[str, Affine], str]:
    """OSCD's 13 L1C bands at their native resolutions: arrays, transforms, CRS WKT."""
    arrays, transforms, crs = {}, {}, ""
    for res in ("10m", "20m", "60m"):
        with rasterio.open(city_dir / f"img{date}_{res}.tif") as ds:
            crs = ds.crs.to_wkt()
            for i, name in enumerate(ds.descriptions):
                arrays[name] = ds.read(i + 1)
                transforms[name] = ds.transform
    return arrays, transforms, crs


def terramind_l2a_bands(path: Path, size: int = 216) -> tuple[dict[str, np.ndarray], dict[str, Affine], str]:
    """TerraMind's 12 L2A bands (all at 10 m in the file) brought to native resolutions by
    block averaging, on a `size` crop (a multiple of 6)."""
    with rasterio.open(path) as ds:
        data = ds.read()[:, :size, :size].astype(np.float64)
        names, t, crs = list(ds.descriptions), ds.transform, ds.crs.to_wkt()
    arrays, transforms = {}, {}
    for name, band in zip(names, data):
        f = NATIVE_RESOLUTION[name] // 10
        arrays[name] = band.reshape(size // f, f, size // f, f).mean(axis=(1, 3)).round().astype(np.uint16)
        transforms[name] = t * Affine.scale(f)
    return arrays, transforms, crs


def _jp2(path: Path, band: np.ndarray, transform: Affine, crs: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=band.shape[1], height=band.shape[0], count=1,
                       dtype="uint16", crs=crs, transform=transform, QUALITY=100, REVERSIBLE="YES") as ds:
        ds.write(band.astype(np.uint16), 1)


def write_product(dest: Path, level: str, arrays: dict, transforms: dict, crs: str, *,
                  sensing: str = "2017-06-21T10:50:31.026Z", baseline: str = "02.05", tile: str = "31UDQ",
                  add_offset: int | None = None, as_zip: bool = False, extra_resolutions: bool = True) -> Path:
    """A SAFE product of `level` under `dest` (or its .zip); returns its path."""
    day = sensing[:10].replace("-", "")
    name = f"S2A_MSI{level}_{day}T105031_N{baseline.replace('.', '')}_R008_T{tile}_{day}T120000"
    safe = dest / f"{name}.SAFE"
    granule = f"GRANULE/{level}_T{tile}_A010000_{day}T105031/IMG_DATA"
    bands = S2_L1C_BANDS if level == "L1C" else S2_L2A_BANDS
    entries = []
    for b in bands:
        res = NATIVE_RESOLUTION[b]
        if level == "L1C":
            rel = f"{granule}/T{tile}_{day}T105031_{b}"
        else:
            rel = f"{granule}/R{res}m/T{tile}_{day}T105031_{b}_{res}m"
        _jp2(safe / f"{rel}.jp2", arrays[b], transforms[b], crs)
        entries.append(rel)
        if level == "L2A" and extra_resolutions and res == 20:  # ESA's coarser copy: ignored
            coarse = f"{granule}/R60m/T{tile}_{day}T105031_{b}_60m"
            a = arrays[b]
            h, w = a.shape[0] // 3 * 3, a.shape[1] // 3 * 3
            small = a[:h, :w].reshape(h // 3, 3, w // 3, 3).mean(axis=(1, 3))
            _jp2(safe / f"{coarse}.jp2", small, transforms[b] * Affine.scale(3), crs)
            entries.append(coarse)
    (safe / f"MTD_MSI{level}.xml").write_text(_metadata(level, name, sensing, baseline, entries, add_offset))
    if not as_zip:
        return safe
    archive = dest / f"{name}.SAFE.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(dest).as_posix())
    return archive


def _metadata(level: str, name: str, sensing: str, baseline: str, entries: list[str], add_offset: int | None) -> str:
    files = "\n".join(f"            <IMAGE_FILE>{e}</IMAGE_FILE>" for e in entries)
    if level == "L1C":
        quant = "<QUANTIFICATION_VALUE unit=\"none\">10000</QUANTIFICATION_VALUE>"
        offsets = ("<Radiometric_Offset_List>" + "".join(
            f'<RADIO_ADD_OFFSET band_id="{i}">{add_offset}</RADIO_ADD_OFFSET>' for i in range(13))
            + "</Radiometric_Offset_List>") if add_offset is not None else ""
        ptype = "S2MSI1C"
    else:
        quant = ("<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit=\"none\">10000"
                 "</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>")
        offsets = ("<BOA_ADD_OFFSET_VALUES_LIST>" + "".join(
            f'<BOA_ADD_OFFSET band_id="{i}">{add_offset}</BOA_ADD_OFFSET>' for i in range(13))
            + "</BOA_ADD_OFFSET_VALUES_LIST>") if add_offset is not None else ""
        ptype = "S2MSI2A"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-{level[1:]}_User_Product xmlns:n1="{_NS[level]}">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{sensing}</PRODUCT_START_TIME>
      <PRODUCT_URI>{name}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>{ptype}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="GS2A_{name[11:26]}_010000_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <DATATAKE_SENSING_START>{sensing}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>8</SENSING_ORBIT_NUMBER>
      </Datatake>
      <Product_Organisation>
        <Granule_List>
          <Granule granuleIdentifier="x" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      {quant}
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-{level[1:]}_User_Product>
"""
