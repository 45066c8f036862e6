"""Seed files for the media fuzz suite: real photos (scikit-image's) as images and as short
videos in every container and codec clipgate takes, plus files it must refuse cleanly: odd
sizes, odd codecs, other formats, empty and non-media files.

Everything is made on the spot with Pillow and PyAV, small so a case takes a fraction of a
second, and kept in memory as bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.media import PHOTOS, pan, photo


@dataclass(frozen=True)
class Seed:
    name: str  # a file name with the usual suffix for its format
    data: bytes
    fmt: str  # "png" | "jpeg" | "webp" | "mp4" | "webm" | "mkv" | "other": picks the mutators


def _image(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _video(frames: list[np.ndarray], suffix: str, codec: str, fps: int = 8,
           pix_fmt: str = "yuv420p", audio: bool = False, streams: int = 1) -> bytes:
    """Encode RGB frames with PyAV into a container chosen by suffix, in memory."""
    buf = io.BytesIO()
    fmt = {".mp4": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska"}[suffix]
    h, w = frames[0].shape[:2]
    with av.open(buf, "w", format=fmt) as out:
        vs = []
        for _ in range(streams):
            s = out.add_stream(codec, rate=fps)
            s.width, s.height, s.pix_fmt = w, h, pix_fmt
            vs.append(s)
        if audio:
            a = out.add_stream("aac", rate=8000)
            a.layout = "mono"
        for rgb in frames:
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for s in vs:
                for p in s.encode(vf):
                    out.mux(p)
        for s in vs:
            for p in s.encode():
                out.mux(p)
    return buf.getvalue()


def _audio_only() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        a = out.add_stream("aac", rate=8000)
        a.layout = "mono"
        samples = (np.sin(np.arange(8000) / 8) * 8000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in a.encode(frame):
            out.mux(p)
        for p in a.encode():
            out.mux(p)
    return buf.getvalue()


def _png_declaring(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h, with one tiny (wrong-sized) IDAT: a decompression
    bomb's header without its bulk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def _clip(name: str, n: int = 12, size: tuple[int, int] = (176, 96)) -> list[np.ndarray]:
    img = photo(name, (size[0] * 5 // 4, size[1] * 5 // 4))
    return [np.ascontiguousarray(pan(img, i, n)[: size[1], : size[0]]) for i in range(n)]


def media_seeds() -> list[Seed]:
    """Valid files of every accepted kind: the material the mutators work on."""
    seeds: list[Seed] = []
    for i, name in enumerate(PHOTOS[:4]):
        rgb = photo(name, (192 + 16 * i, 128 + 8 * i))
        seeds.append(Seed(f"{name}.png", _image(rgb, "PNG"), "png"))
        seeds.append(Seed(f"{name}.jpg", _image(rgb, "JPEG", quality=85), "jpeg"))
        seeds.append(Seed(f"{name}.webp", _image(rgb, "WEBP", quality=80), "webp"))
    seeds.append(Seed("progressive.jpg", _image(photo("coffee", (200, 150)), "JPEG",
                                                progressive=True), "jpeg"))
    clip = _clip("astronaut")
    seeds.append(Seed("astronaut.mp4", _video(clip, ".mp4", "libx264"), "mp4"))
    seeds.append(Seed("chelsea.mov", _video(_clip("chelsea"), ".mov", "libx264"), "mp4"))
    seeds.append(Seed("coffee.webm", _video(_clip("coffee", 8), ".webm", "libvpx-vp9"), "webm"))
    seeds.append(Seed("rocket.mkv", _video(_clip("rocket", 8), ".mkv", "libx264"), "mkv"))
    seeds.append(Seed("sound.mp4", _video(clip[:8], ".mp4", "libx264", audio=True), "mp4"))
    return seeds


def odd_seeds() -> list[Seed]:
    """Files with sizes, codecs and formats at or past the edge of what clipgate takes: each must
    be accepted or refused with a clear 4xx / exit 2, never crash."""
    grey = np.full((1, 1, 3), 128, np.uint8)
    out: list[Seed] = []
    for w, h in [(1, 1), (1, 1000), (1000, 1), (4, 4000), (4000, 4), (7, 7), (16, 16), (33, 17)]:
        out.append(Seed(f"thin-{w}x{h}.png", _image(np.resize(grey, (h, w, 3)), "PNG"), "png"))
    out.append(Seed("thin-1x8000000.png", _png_declaring(1, 8_000_000), "png"))
    out.append(Seed("bomb-65535x65535.png", _png_declaring(65535, 65535), "png"))
    out.append(Seed("zero-0x10.png", _png_declaring(0, 10), "png"))
    rgb = photo("astronaut", (96, 96))
    out.append(Seed("grey16.png", _image((rgb[..., 0].astype(np.uint16) * 257), "PNG"), "png"))
    out.append(Seed("palette.png", _pal(rgb), "png"))
    out.append(Seed("rgba.webp", _image(np.dstack([rgb, rgb[..., :1]]), "WEBP"), "webp"))
    out.append(Seed("cmyk.jpg", _cmyk(rgb), "jpeg"))
    for fmt, name in [("GIF", "anim.gif"), ("BMP", "pic.bmp"), ("TIFF", "pic.tiff"), ("ICO", "i.ico")]:
        out.append(Seed(name, _image(rgb, fmt), "other"))
    frames = _clip("coffee", 6, (64, 48))
    out.append(Seed("tiny-2x2.mp4", _video([f[:2, :2].copy() for f in frames], ".mp4", "libx264",
                                            pix_fmt="yuv444p"), "mp4"))
    out.append(Seed("odd-65x49.mkv", _video([np.ascontiguousarray(f[:49, :65]) for f in
                                             _clip("coffee", 6, (80, 64))], ".mkv", "ffv1",
                                            pix_fmt="yuv444p"), "mkv"))
    out.append(Seed("thin-16x1024.mp4", _video([np.zeros((1024, 16, 3), np.uint8)] * 4, ".mp4",
                                               "libx264"), "mp4"))
    out.append(Seed("one-frame.mp4", _video(frames[:1], ".mp4", "libx264"), "mp4"))
    out.append(Seed("mjpeg.mkv", _video(frames, ".mkv", "mjpeg", pix_fmt="yuvj420p"), "mkv"))
    out.append(Seed("mpeg4.mp4", _video(frames, ".mp4", "mpeg4"), "mp4"))
    out.append(Seed("vp8.webm", _video(frames, ".webm", "libvpx"), "webm"))
    out.append(Seed("two-streams.mkv", _video(frames, ".mkv", "libx264", streams=2), "mkv"))
    out.append(Seed("fast-240fps.mp4", _video(frames, ".mp4", "libx264", fps=240), "mp4"))
    out.append(Seed("audio-only.mp4", _audio_only(), "mp4"))
    out.append(Seed("empty.mp4", b"", "other"))
    out.append(Seed("text.mp4", b"this is not a video\n" * 20, "other"))
    out.append(Seed("zip.png", _zip(), "other"))
    return out


def _pal(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16).save(buf, format="PNG")
    return buf.getvalue()


def _cmyk(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, format="JPEG")
    return buf.getvalue()


def _zip() -> bytes:
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "x" * 1000)
    return buf.getvalue()


def signed_seed(release: Callable[[Path], bytes], tmp: Path) -> Seed:
    """A clip as clipgate releases it (C2PA manifest and all), for verify's parser to chew on."""
    clip = tmp / "to-release.mp4"
    clip.write_bytes(_video(_clip("hubble_deep_field", 8), ".mp4", "libx264"))
    return Seed("signed.mp4", release(clip), "mp4")
