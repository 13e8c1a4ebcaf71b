"""Sentinel-2 products (SAFE folders, or their `.zip`) as frames: where the bands are, and what
the product says about them.

A product is one frame. Its band files (JPEG2000, 10, 20 and 60 m) are listed by the product
metadata (`MTD_MSIL1C.xml` / `MTD_MSIL2A.xml`, `Product_Organisation/.../IMAGE_FILE`); each band
is taken at its native resolution (L2A also ships coarser copies: not used) and becomes part of
one frame of `terracodec.io.raster`, which brings 20 and 60 m bands onto the 10 m grid by
bilinear resampling (GDAL warped VRT; nodata 0 excluded from the interpolation). Bands come in
the SSL4EO-S12 order: 13 for L1C, 12 (no cirrus B10) for L2A. Inside a zip, files are read
through GDAL's `/vsizip/`, never unpacked.

The product metadata is kept as the frame's tags (restored as GeoTIFF tags on decode):
`PRODUCT_URI`, `MGRS_TILE`, `SENSING_TIME`, `PROCESSING_BASELINE`, `PROCESSING_LEVEL`,
`PRODUCT_TYPE`, `SPACECRAFT_NAME`, `QUANTIFICATION_VALUE`, and per band `ADD_OFFSET` (the
radiometric offset, -1000 from baseline 04.00: `RADIO_ADD_OFFSET` in L1C, `BOA_ADD_OFFSET`
in L2A); the baseline and offsets drive the +1000 DN
detection (`terracodec.io.baseline`). Nodata is the product's `NODATA` special value (0);
saturated pixels (65535) lie outside the lossy range and are stored exactly.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS
from terracodec.errors import InputError

#: Native resolution (m) of each band; L2A products also ship resampled copies.
NATIVE_RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
                     "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
#: `band_id` of the product metadata (0..12) -> band name.
BAND_IDS = dict(enumerate(S2_L1C_BANDS))
#: Product metadata files larger than this are refused (real ones are ~60 kB).
MAX_METADATA_BYTES = 16 << 20

_MTD = re.compile(r"^(?:(?P<dir>[^/]+\.SAFE)/)?MTD_MSIL(?P<level>1C|2A)\.xml$", re.IGNORECASE)
_BAND_FILE = re.compile(r"_(B\d[\dA])(?:_(\d{2})m)?$", re.IGNORECASE)
_TILE = re.compile(r"_T(\d{2}[A-Z]{3})_")


@dataclass
class Product:
    """What one product gives a frame: its band files, in order, and its metadata."""

    source: Path
    name: str                       # the product name without .SAFE
    level: str                      # "L1C" or "L2A"
    bands: list[str]                # names, SSL4EO order
    files: list[str]                # one path per band (GDAL-readable; /vsizip/ inside a zip)
    tags: dict[str, str] = field(default_factory=dict)
    band_tags: list[dict[str, str]] = field(default_factory=list)
    timestamp: str | None = None
    nodata: float = 0.0


def _metadata_member(names: list[str]) -> tuple[str, str] | None:
    for n in names:
        m = _MTD.match(n)
        if m:
            return n, "L" + m["level"].upper()
    return None


def is_product(path: str | Path) -> bool:
    """A SAFE folder (holding MTD_MSIL1C/2A.xml) or a zip of one."""
    p = Path(path)
    if p.is_dir():
        return _metadata_member([c.name for c in p.iterdir()]) is not None
    if p.is_file() and p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as z:
                return _metadata_member(z.namelist()) is not None
        except (zipfile.BadZipFile, OSError):
            return False
    return False


def _text(root: ElementTree.Element, tag: str) -> str | None:
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == tag and el.text and el.text.strip():
            return el.text.strip()
    return None


def _per_band(root: ElementTree.Element, tag: str) -> dict[str, str]:
    out = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == tag and el.text is not None:
            band = BAND_IDS.get(int(el.get("band_id", "-1"))) if el.get("band_id", "").isdigit() else None
            if band:
                out[band] = el.text.strip()
    return out


def _special_value(root: ElementTree.Element, name: str) -> str | None:
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Special_Values":
            kind = _text(el, "SPECIAL_VALUE_TEXT")
            if kind and kind.upper() == name:
                return _text(el, "SPECIAL_VALUE_INDEX")
    return None


def _band_files(image_files: list[str], level: str) -> dict[str, str]:
    """Band name -> IMAGE_FILE entry at the band's native resolution."""
    found: dict[str, str] = {}
    for entry in image_files:
        m = _BAND_FILE.search(entry)
        if not m:
            continue
        band, res = m[1].upper(), m[2]
        if band not in NATIVE_RESOLUTION:
            continue
        if level == "L2A" and (res is None or int(res) != NATIVE_RESOLUTION[band]):
            continue
        found.setdefault(band, entry)
    return found


def read_product(path: str | Path) -> Product:
    """The bands and metadata of a SAFE folder or zip; InputError for anything else."""
    p = Path(path)
    if p.is_dir():
        member = _metadata_member([c.name for c in p.iterdir()])
        if member is None:
            raise InputError(f"{p}: not a Sentinel-2 product (no MTD_MSIL1C.xml or MTD_MSIL2A.xml)")
        xml_path = p / member[0]
        if xml_path.stat().st_size > MAX_METADATA_BYTES:
            raise InputError(f"{p}: product metadata is implausibly large")
        raw, root_prefix = xml_path.read_bytes(), str(p.resolve())
    else:
        try:
            with zipfile.ZipFile(p) as z:
                member = _metadata_member(z.namelist())
                if member is None:
                    raise InputError(f"{p}: not a Sentinel-2 product zip (no MTD_MSIL1C.xml or MTD_MSIL2A.xml)")
                if z.getinfo(member[0]).file_size > MAX_METADATA_BYTES:
                    raise InputError(f"{p}: product metadata is implausibly large")
                raw = z.read(member[0])
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{p}: not a readable zip ({exc})") from None
        folder = member[0].rsplit("/", 1)[0] if "/" in member[0] else ""
        root_prefix = f"/vsizip/{{{p.resolve()}}}" + (f"/{folder}" if folder else "")
    level = member[1]
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise InputError(f"{p}: malformed product metadata ({exc})") from None
    return _product(p, root, level, root_prefix)


def _product(p: Path, root: ElementTree.Element, level: str, prefix: str) -> Product:
    name = _text(root, "PRODUCT_URI") or p.name
    name = re.sub(r"\.(SAFE|zip)$", "", re.sub(r"\.SAFE\.zip$", "", name, flags=re.I), flags=re.I)
    image_files = [el.text.strip() for el in root.iter()
                   if el.tag.rsplit("}", 1)[-1] == "IMAGE_FILE" and el.text]
    files = _band_files(image_files, level)
    wanted = list(S2_L1C_BANDS if level == "L1C" else S2_L2A_BANDS)
    missing = [b for b in wanted if b not in files]
    if missing:
        raise InputError(f"{p}: product metadata lists no file for band(s) {', '.join(missing)}")
    offsets = _per_band(root, "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET")
    quantification = _text(root, "QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE")
    sensing = _text(root, "PRODUCT_START_TIME") or _text(root, "DATATAKE_SENSING_START")
    tile = _TILE.search(name)
    tags = {
        "PRODUCT_URI": _text(root, "PRODUCT_URI") or p.name,
        "MGRS_TILE": tile[1] if tile else "",
        "SENSING_TIME": sensing or "",
        "PROCESSING_BASELINE": _text(root, "PROCESSING_BASELINE") or "",
        "PROCESSING_LEVEL": level,
        "PRODUCT_TYPE": _text(root, "PRODUCT_TYPE") or "",
        "SPACECRAFT_NAME": _text(root, "SPACECRAFT_NAME") or "",
        "QUANTIFICATION_VALUE": quantification or "",
    }
    nodata = _special_value(root, "NODATA")
    saturated = _special_value(root, "SATURATED")
    if saturated:
        tags["SATURATED_VALUE"] = saturated
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    band_tags = [{offset_tag: offsets[b]} if b in offsets else {} for b in wanted]
    return Product(
        source=p, name=name, level=level, bands=wanted,
        files=[f"{prefix}/{files[b]}.jp2" for b in wanted],
        tags={k: v for k, v in tags.items() if v}, band_tags=band_tags,
        timestamp=sensing, nodata=float(nodata) if nodata not in (None, "") else 0.0,
    )


def apply_product(meta: object, product: Product) -> None:
    """What the product says, over what its band files say (they name no bands)."""
    meta.name = f"{product.name}.tif"  # type: ignore[attr-defined]
    meta.descriptions = list(product.bands)  # type: ignore[attr-defined]
    meta.tags = {**meta.tags, **product.tags}  # type: ignore[attr-defined]
    meta.band_tags = [{**a, **b} for a, b in zip(meta.band_tags, product.band_tags)]  # type: ignore[attr-defined]
    meta.nodata = product.nodata  # type: ignore[attr-defined]
    meta.timestamp = product.timestamp  # type: ignore[attr-defined]


__all__ = ["NATIVE_RESOLUTION", "Product", "apply_product", "is_product", "read_product"]
