"""A JPEG's marker structure, checked before the file goes to the device decoder.

nvJPEG decodes some damaged files that Pillow (libjpeg) refuses, a JPEG cut inside its scan
among them. The device path therefore sends a JPEG to the device only when its structure is
one libjpeg decodes without a fatal error: SOI; marker segments whose lengths stay inside the
file; one baseline or progressive 8-bit frame header with sane sizes, components and sampling;
quantisation and Huffman tables that libjpeg accepts and that every scan's components refer
to; scans whose entropy-coded data ends at a marker; and EOI. Bytes after EOI are ignored,
as libjpeg ignores them. Anything else raises :class:`UnfitJpeg`, and the caller lets Pillow
decide: it decodes the file or rejects it with the CPU path's own code and reason.

The entropy-coded data is not walked byte by byte: :func:`marker_positions` finds every marker
of a whole batch of files in one vectorised pass, and the check jumps from a scan header to
the first marker after it.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from models.images import ImageHeader

_SOI, _EOI, _SOS, _DHT, _DQT, _DRI = 0xD8, 0xD9, 0xDA, 0xC4, 0xDB, 0xDD
_FRAMES = {0xC0: False, 0xC2: True}  # baseline and progressive Huffman: progressive or not
_SKIPPED = frozenset({*range(0xE0, 0xF0), 0xFE})  # APPn and COM
_MODES = {1: "L", 3: "RGB"}
_ADOBE = b"Adobe"

# Second bytes that make 0xFF a marker inside entropy-coded data: not stuffing (0x00), not a
# fill byte (0xFF) and not a restart marker (RST0-RST7), which belong to the scan.
_ENDS_DATA = np.ones(256, dtype=bool)
_ENDS_DATA[[0x00, 0xFF, *range(0xD0, 0xD8)]] = False


class UnfitJpeg(ValueError):
    """The JPEG is not one to hand the device decoder; the message says why."""


class JpegLayout(NamedTuple):
    """A checked JPEG: its header, and ``end``, the offset just past its EOI marker."""

    header: ImageHeader
    end: int


class _Frame(NamedTuple):
    """A frame header: size, ``components`` as ((id, quantisation table), ...)."""

    height: int
    width: int
    components: tuple[tuple[int, int], ...]
    progressive: bool
    rgb_ids: bool


class _Scan(NamedTuple):
    """A scan header: ``components`` as ((id, DC table, AC table), ...), then Ss, Se, Ah, Al."""

    components: tuple[tuple[int, int, int], ...]
    first: int
    last: int
    high: int
    low: int


@dataclass(slots=True)
class _Parse:
    """What the segments seen so far declared."""

    orientation: int | None = None  # from the first EXIF block, as Pillow reads it
    frame: _Frame | None = None
    tables: dict[int, int] = field(default_factory=dict)  # component id: quantisation table
    adobe_transform: int | None = None
    jfif: bool = False
    quant: set[int] = field(default_factory=set)
    huffman: set[tuple[int, int]] = field(default_factory=set)  # (class, id); 0 = DC
    scans: int = 0


def marker_positions(buffer: np.ndarray) -> list[int]:
    """Offsets ``p`` of ``buffer: (n_bytes,) uint8`` where a marker that ends entropy-coded
    data starts: ``buffer[p] == 0xFF`` and ``buffer[p + 1]`` is neither stuffing, fill nor RSTn.

    Sorted; one pass for any number of files laid end to end.
    """
    ff = np.flatnonzero(buffer[:-1] == 0xFF)
    return ff[_ENDS_DATA[buffer[ff + 1]]].tolist()


def check_jpeg(data: bytes, markers: list[int], offset: int = 0) -> JpegLayout:
    """Check the JPEG file ``data``, found at ``offset`` of the buffer that ``markers``
    (from :func:`marker_positions`) were found in.

    Returns its layout; raises :class:`UnfitJpeg` when the device decoder should not take it.
    """
    stop = len(data)
    if stop < 4 or data[0] != 0xFF or data[1] != _SOI:
        raise UnfitJpeg("does not start with SOI")
    parse, position = _Parse(), 2
    while True:
        if position + 2 > stop:
            raise UnfitJpeg("ends before EOI")
        if data[position] != 0xFF:
            raise UnfitJpeg(f"no marker at offset {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
            continue
        if marker == _EOI:
            return _layout(parse, position + 2)
        if position + 4 > stop:
            raise UnfitJpeg("ends inside a marker segment")
        end = position + 2 + (data[position + 2] << 8 | data[position + 3])
        if end - position < 4 or end > stop:
            raise UnfitJpeg(f"marker 0x{marker:02X} has a length outside the file")
        body = data[position + 4 : end]
        if marker == _DHT:  # the commonest segments first, without a call
            parse.huffman.update(_huffman_tables(body))
        elif marker == _DQT:
            parse.quant.update(_quant_tables(body))
        elif marker == _SOS:
            _scan(parse, _scan_info(body))
            position = _after_scan(end + offset, stop + offset, markers) - offset
            continue
        else:
            _segment(parse, marker, body)
        position = end


def check_jpeg_bytes(data: bytes) -> JpegLayout:
    """:func:`check_jpeg` for one file's bytes."""
    return check_jpeg(data, marker_positions(np.frombuffer(data + b"\0", dtype=np.uint8)))


def _layout(parse: _Parse, end: int) -> JpegLayout:
    if parse.frame is None or parse.scans == 0:
        raise UnfitJpeg("EOI before a frame and a scan")
    frame = parse.frame
    if len(frame.components) == 3 and not _ycbcr(parse):
        raise UnfitJpeg("three components stored as RGB, not YCbCr")
    mode = _MODES[len(frame.components)]
    return JpegLayout(_header(mode, frame.width, frame.height, parse.orientation or 1), end)


@lru_cache(maxsize=1024)
def _header(mode: str, width: int, height: int, orientation: int) -> ImageHeader:
    return ImageHeader("JPEG", mode, width, height, orientation)


def _ycbcr(parse: _Parse) -> bool:
    """Whether libjpeg would convert the three components from YCbCr (its own rule)."""
    if parse.jfif:
        return True
    if parse.adobe_transform is not None:
        return parse.adobe_transform == 1
    return not parse.frame.rgb_ids


def _after_scan(data_start: int, stop: int, markers: list[int]) -> int:
    """The offset of the marker that ends the scan's entropy-coded data."""
    at = bisect_left(markers, data_start)
    if at == len(markers) or markers[at] + 2 > stop:
        raise UnfitJpeg("scan data runs to the end of the file")
    return markers[at]


def _segment(parse: _Parse, marker: int, body: bytes) -> None:
    """Record an APPn, COM, frame or DRI segment, or raise: the device takes no others."""
    if marker in _SKIPPED:
        if marker == 0xE1 and body[:6] == b"Exif\0\0" and parse.orientation is None:
            parse.orientation = exif_orientation(body[6:])
        elif marker == 0xE0 and body[:5] == b"JFIF\0" and len(body) >= 14:
            parse.jfif = True
        elif marker == 0xEE and body[:5] == _ADOBE and len(body) >= 12:
            parse.adobe_transform = body[11]
    elif marker in _FRAMES:
        if parse.frame is not None:
            raise UnfitJpeg("a second frame header")
        parse.frame = _frame_info(marker, body)
        parse.tables = dict(parse.frame.components)
    elif marker == _DRI:
        if len(body) != 2:
            raise UnfitJpeg("DRI has a bad length")
    else:
        raise UnfitJpeg(f"marker 0x{marker:02X} is not one the device decoder takes")


# The same encoder writes the same tables: a table segment is parsed once.
@lru_cache(maxsize=1024)
def _quant_tables(body: bytes) -> frozenset[int]:
    """Ids of the quantisation tables of one DQT segment; exactly as long as its tables."""
    ids, at = set(), 0
    while at < len(body):
        precision, table = body[at] >> 4, body[at] & 15
        if precision > 1 or table > 3:
            raise UnfitJpeg("DQT table with a bad precision or id")
        ids.add(table)
        at += 1 + 64 * (precision + 1)
    if at != len(body):
        raise UnfitJpeg("DQT length does not match its tables")
    return frozenset(ids)


@lru_cache(maxsize=1024)
def _huffman_tables(body: bytes) -> frozenset[tuple[int, int]]:
    """(class, id) of the Huffman tables of one DHT segment, each valid as libjpeg checks."""
    ids, at = set(), 0
    while at < len(body):
        kind, table = body[at] >> 4, body[at] & 15
        counts = body[at + 1 : at + 17]
        total = sum(counts)
        symbols = body[at + 17 : at + 17 + total]
        if kind > 1 or table > 3 or len(counts) < 16 or len(symbols) != total or total > 256:
            raise UnfitJpeg("DHT table with a bad class, id or length")
        if not _valid_code_lengths(counts) or (kind == 0 and max(symbols, default=0) > 15):
            raise UnfitJpeg("DHT table that libjpeg rejects")
        ids.add((kind, table))
        at += 17 + total
    return frozenset(ids)


def _valid_code_lengths(counts: bytes) -> bool:
    """Whether canonical codes of these 16 length counts fit their lengths (libjpeg's test)."""
    code = 0
    for length, count in enumerate(counts, start=1):
        code += count
        if code >= 1 << length and count:
            return False
        code <<= 1
    return True


@lru_cache(maxsize=1024)
def _frame_info(marker: int, body: bytes) -> _Frame:
    """SOF0/SOF2: 8 bits, 1 or 3 components, with sampling nvJPEG and libjpeg share."""
    if len(body) < 6:
        raise UnfitJpeg("frame header too short")
    precision, height, width, count = struct.unpack(">BHHB", body[:6])
    if len(body) != 6 + 3 * count or count not in _MODES:
        raise UnfitJpeg(f"frame header with {count} components or a bad length")
    if precision != 8 or height == 0 or width == 0:
        raise UnfitJpeg(f"frame of {width}x{height} pixels at {precision} bits")
    components: dict[int, int] = {}
    for at in range(6, len(body), 3):
        ident, sampling, table = body[at], body[at + 1], body[at + 2]
        horizontal, vertical = sampling >> 4, sampling & 15
        if ident in components or table > 3 or not 1 <= horizontal <= 4 or not 1 <= vertical <= 4:
            raise UnfitJpeg("frame component with a bad id, table or sampling")
        if count == 3 and (sampling != 0x11 if at > 6 else max(horizontal, vertical) > 2):
            raise UnfitJpeg("chroma subsampling other than 4:4:4, 4:2:2, 4:4:0 or 4:2:0")
        components[ident] = table
    rgb_ids = list(components) == [ord("R"), ord("G"), ord("B")]
    return _Frame(height, width, tuple(components.items()), _FRAMES[marker], rgb_ids)


@lru_cache(maxsize=1024)
def _scan_info(body: bytes) -> _Scan:
    """An SOS header's fields, once its length agrees with its component count."""
    count = body[0] if body else 0
    if not 1 <= count <= 4 or len(body) != 4 + 2 * count:
        raise UnfitJpeg("scan header with a bad component count or length")
    selectors = tuple(
        (body[at], body[at + 1] >> 4, body[at + 1] & 15) for at in range(1, 1 + 2 * count, 2)
    )
    return _Scan(selectors, body[-3], body[-2], body[-1] >> 4, body[-1] & 15)


def _scan(parse: _Parse, scan: _Scan) -> None:
    """A scan of the frame's components, with its tables defined and valid parameters."""
    if parse.frame is None:
        raise UnfitJpeg("a scan before the frame header")
    _scan_parameters(parse, scan)
    needs_dc, needs_ac = scan.first == 0 and scan.high == 0, scan.last > 0
    selected = set()
    for ident, dc, ac in scan.components:
        if ident not in parse.tables or ident in selected:
            raise UnfitJpeg("scan component not in the frame, or repeated")
        if parse.tables[ident] not in parse.quant:
            raise UnfitJpeg("scan component whose quantisation table is not defined")
        if (needs_dc and (0, dc) not in parse.huffman) or (
            needs_ac and (1, ac) not in parse.huffman
        ):
            raise UnfitJpeg("scan refers to an undefined Huffman table")
        selected.add(ident)
    parse.scans += 1


def _scan_parameters(parse: _Parse, scan: _Scan) -> None:
    count, first, last, high, low = len(scan.components), *scan[1:]
    if not parse.frame.progressive:
        full = (first, last, high, low) == (0, 63, 0, 0)
        if parse.scans or count != len(parse.tables) or not full:
            raise UnfitJpeg("a baseline frame with other than one interleaved full scan")
        return
    dc_scan = first == 0
    if (dc_scan and last != 0) or (not dc_scan and (count != 1 or not first <= last <= 63)):
        raise UnfitJpeg("progressive scan with a bad spectral selection")
    if low > 13 or (high and low != high - 1):
        raise UnfitJpeg("progressive scan with a bad successive approximation")


def exif_orientation(tiff: bytes) -> int:
    """The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; 1 if absent."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(tiff) - 11), 12):
        tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
        if tag == 0x0112 and kind == 3:  # SHORT
            (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
            return value if 1 <= value <= 8 else 1
    return 1
