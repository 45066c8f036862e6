"""Mutations for the media fuzz suite: generic byte damage (bit flips, interesting values,
truncation, splices) and structure-aware edits that keep a file parseable far enough to reach
the decoders (MP4 box sizes and types, PNG header fields with a valid CRC, JPEG frame sizes,
Matroska element sizes).

Each mutator takes the bytes and a seeded numpy Generator and returns new bytes plus a short
description, so a failing case can be named and replayed from its seed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np

Mutator = Callable[[bytes, np.random.Generator], tuple[bytes, str]]

INTERESTING_32 = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                  0xFFFFFFFE, 0xFFFFFFFF]
# MP4 boxes whose bodies are more boxes (ISO 14496-12), so the walk can reach stbl and friends.
MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex",
                  b"moof", b"traf"}
MP4_TYPES = [b"moov", b"trak", b"mdat", b"stsz", b"stco", b"co64", b"stts", b"stsc", b"stsd",
             b"avcC", b"hdlr", b"mdhd", b"tkhd", b"free", b"uuid", b"jumb", b"ftyp", b"elst"]


def bit_flips(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    if not data:
        return data, "bit flips (empty)"
    buf = bytearray(data)
    n = int(rng.integers(1, 65))
    # Half the flips land in the first 4 KB, where headers and indexes live.
    for _ in range(n):
        hi = min(len(buf), 4096) if rng.random() < 0.5 else len(buf)
        i = int(rng.integers(0, hi))
        buf[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf), f"{n} bit flips"


def interesting_values(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    if len(data) < 4:
        return data + b"\xff\xff\xff\xff", "interesting values (short)"
    buf = bytearray(data)
    n = int(rng.integers(1, 9))
    for _ in range(n):
        i = int(rng.integers(0, len(buf) - 3))
        v = INTERESTING_32[int(rng.integers(0, len(INTERESTING_32)))]
        buf[i:i + 4] = struct.pack(">I", v)
    return bytes(buf), f"{n} interesting 32-bit values"


def truncate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    if len(data) < 2:
        return b"", "truncated to 0"
    cut = int(rng.choice([rng.integers(0, min(64, len(data))), rng.integers(0, len(data))]))
    return data[:cut], f"truncated to {cut} of {len(data)} bytes"


def splice(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """Delete, duplicate or move a random chunk."""
    if len(data) < 16:
        return data * 2, "doubled"
    a = int(rng.integers(0, len(data) - 8))
    b = int(rng.integers(a + 1, min(len(data), a + 1 + max(8, len(data) // 8))))
    chunk, op = data[a:b], int(rng.integers(0, 3))
    if op == 0:
        return data[:a] + data[b:], f"deleted bytes {a}-{b}"
    if op == 1:
        return data[:b] + chunk + data[b:], f"duplicated bytes {a}-{b}"
    dest = int(rng.integers(0, len(data)))
    rest = data[:a] + data[b:]
    dest = min(dest, len(rest))
    return rest[:dest] + chunk + rest[dest:], f"moved bytes {a}-{b} to {dest}"


def _mp4_boxes(data: bytes, start: int = 0, end: int | None = None, depth: int = 0
               ) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of every box, walking into container boxes."""
    end = len(data) if end is None else end
    out, i = [], start
    while i + 8 <= end and depth < 8:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size == 1 and i + 16 <= end:
            size = struct.unpack(">Q", data[i + 8:i + 16])[0]
        elif size == 0:
            size = end - i
        if size < 8 or i + size > end:
            break
        out.append((i, size, kind))
        if kind in MP4_CONTAINERS:
            out += _mp4_boxes(data, i + 8, i + size, depth + 1)
        i += size
    return out


def mp4_box_edit(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    boxes = _mp4_boxes(data)
    if not boxes:
        return bit_flips(data, rng)
    off, size, kind = boxes[int(rng.integers(0, len(boxes)))]
    buf = bytearray(data)
    op = int(rng.integers(0, 6))
    name = kind.decode("latin-1")
    if op == 0:
        v = INTERESTING_32[int(rng.integers(0, len(INTERESTING_32)))]
        buf[off:off + 4] = struct.pack(">I", v)
        return bytes(buf), f"box {name} at {off}: size {size} -> {v}"
    if op == 1:
        new = MP4_TYPES[int(rng.integers(0, len(MP4_TYPES)))]
        buf[off + 4:off + 8] = new
        return bytes(buf), f"box {name} at {off}: type -> {new.decode()}"
    if op == 2:
        return data[:off] + data[off + size:], f"box {name} at {off} removed"
    if op == 3:
        return data[:off + size] + data[off:off + size] + data[off + size:], \
            f"box {name} at {off} duplicated"
    if op == 4 and size >= 16:
        # The first counts of a table box (stsz/stco/stts...: version+flags, then entry counts).
        i = off + 8 + 4 + 4 * int(rng.integers(0, min(3, (size - 12) // 4)))
        v = INTERESTING_32[int(rng.integers(0, len(INTERESTING_32)))]
        buf[i:i + 4] = struct.pack(">I", v)
        return bytes(buf), f"box {name} at {off}: field at +{i - off} -> {v}"
    # Garble the body.
    n = max(1, min(size - 8, int(rng.integers(1, 33))))
    i = off + 8 + int(rng.integers(0, max(1, size - 8 - n + 1)))
    buf[i:i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(buf), f"box {name} at {off}: {n} bytes garbled"


def _png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    out, i = [], 8
    while i + 12 <= len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        if i + 12 + n > len(data):
            break
        out.append((i, n, kind))
        i += 12 + n
    return out


def png_header_edit(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """Rewrite IHDR's width, height, bit depth or colour type, with a correct CRC so the
    decoder takes it at its word."""
    chunks = _png_chunks(data)
    if not chunks or chunks[0][2] != b"IHDR":
        return bit_flips(data, rng)
    off = chunks[0][0]
    w, h, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB", data[off + 8:off + 21])
    op = int(rng.integers(0, 4))
    sizes = [0, 1, 2, 3, 4, 65535, 100_000, 0x7FFFFFFF, 0xFFFFFFFF]
    if op == 0:
        w = sizes[int(rng.integers(0, len(sizes)))]
    elif op == 1:
        h = sizes[int(rng.integers(0, len(sizes)))]
    elif op == 2:
        depth = int(rng.choice([0, 1, 2, 3, 4, 16, 255]))
    else:
        ctype = int(rng.choice([0, 1, 3, 4, 5, 6, 7, 255]))
    body = struct.pack(">IIBBBBB", w, h, depth, ctype, comp, filt, inter)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    out = data[:off + 8] + body + crc + data[off + 25:]
    return out, f"PNG IHDR -> {w}x{h} depth {depth} colour type {ctype}"


def png_chunk_edit(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    chunks = _png_chunks(data)
    if len(chunks) < 2:
        return bit_flips(data, rng)
    off, n, kind = chunks[int(rng.integers(1, len(chunks)))]
    op = int(rng.integers(0, 3))
    if op == 0:
        return data[:off] + data[off + 12 + n:], f"PNG chunk {kind.decode('latin-1')} removed"
    if op == 1:
        return data[:off] + data[off:off + 12 + n] * 2 + data[off + 12 + n:], \
            f"PNG chunk {kind.decode('latin-1')} duplicated"
    v = INTERESTING_32[int(rng.integers(0, len(INTERESTING_32)))]
    return data[:off] + struct.pack(">I", v) + data[off + 4:], \
        f"PNG chunk {kind.decode('latin-1')} length -> {v}"


def jpeg_frame_edit(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """Rewrite the height/width of the SOF marker, or remove a marker segment."""
    sofs = [i for i in range(len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2)]
    if not sofs:
        return bit_flips(data, rng)
    i = sofs[0]
    if rng.random() < 0.7:
        h = int(rng.choice([0, 1, 2, 8, 65535]))
        w = int(rng.choice([0, 1, 2, 8, 65535]))
        return data[:i + 5] + struct.pack(">HH", h, w) + data[i + 9:], f"JPEG SOF -> {w}x{h}"
    seg = struct.unpack(">H", data[i + 2:i + 4])[0]
    return data[:i] + data[i + 2 + seg:], "JPEG SOF segment removed"


def ebml_size_edit(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """Matroska/WebM: overwrite the size byte after a well-known element id (Segment, Cluster,
    Tracks, SimpleBlock) with an odd length, or the unknown-size marker."""
    ids = {b"\x18\x53\x80\x67": "Segment", b"\x1f\x43\xb6\x75": "Cluster",
           b"\x16\x54\xae\x6b": "Tracks", b"\xa3": "SimpleBlock", b"\xae": "TrackEntry"}
    hits = [(i, name) for key, name in ids.items()
            for i in _find_all(data, key)[:20]]
    if not hits:
        return bit_flips(data, rng)
    i, name = hits[int(rng.integers(0, len(hits)))]
    j = i + (4 if name in ("Segment", "Cluster", "Tracks") else 1)
    if j >= len(data):
        return bit_flips(data, rng)
    v = int(rng.choice([0x80, 0x81, 0xFF, 0x01, 0x40, 0x08]))
    buf = bytearray(data)
    buf[j] = v
    return bytes(buf), f"EBML {name} at {i}: size byte -> {v:#x}"


def _find_all(data: bytes, key: bytes) -> list[int]:
    out, i = [], data.find(key)
    while i >= 0 and len(out) < 200:
        out.append(i)
        i = data.find(key, i + 1)
    return out


GENERIC: list[Mutator] = [bit_flips, interesting_values, truncate, splice]
BY_FORMAT: dict[str, list[Mutator]] = {
    "mp4": [mp4_box_edit, mp4_box_edit],
    "png": [png_header_edit, png_chunk_edit],
    "jpeg": [jpeg_frame_edit],
    "webm": [ebml_size_edit],
    "mkv": [ebml_size_edit],
}


def mutate(data: bytes, fmt: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """One to three mutations, structure-aware ones for the format about half the time."""
    steps = []
    for _ in range(int(rng.integers(1, 4))):
        pool = BY_FORMAT.get(fmt, []) if rng.random() < 0.5 else []
        fn = (pool or GENERIC)[int(rng.integers(0, len(pool or GENERIC)))]
        data, what = fn(data, rng)
        steps.append(what)
    return data, "; ".join(steps)
