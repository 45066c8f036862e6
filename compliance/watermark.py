"""An invisible watermark in every frame of a released clip: a random key to its release, with a
Reed-Solomon code, so a copy whose manifest was stripped names its release by its pixels.

The scheme is invisible-watermark's DWT-DCT-SVD (`imwatermark.dwtDctSvd`): the U (chroma) plane's
Haar approximation is cut into 8x8 blocks, and each block's largest singular value is quantised
to an odd or even half step of SCALE for its bit. Measured on generated 640x360 frames (see
docs/provenance.md), scale 104 with 8x8 blocks costs about 38.5 dB of PSNR and still reads back
after an H.264 re-encode at CRF 28, where the library's defaults (scale 36, 4x4 blocks), its luma
variant and its max-DCT method did not survive CRF 23.

The library loops over blocks in Python (about 130 ms a 640x360 frame to embed, 70 ms to read on
this machine): too slow for a lookup under a second. So the same arithmetic runs here on all
blocks at once with numpy; tests check that the library's own decoder reads what this embeds,
bit for bit the same scores as ours. (The DCT of the library drops out: it is orthonormal, so a
block and its DCT have the same singular values.) One deliberate difference: the library puts the
horizontal and vertical detail back swapped (`idwt2((ca, (v, h, d)))`), which costs PSNR for
nothing; here they go back where they came from.

Payload: KEY_BYTES of key + ECC_BYTES of Reed-Solomon parity (reedsolo), 72 bits, XORed with a
fixed pseudo-random mask so the bits an unmarked picture yields (all zeros for a flat one) are no
codeword. A key is only ever looked up among recorded releases, so noise that happens to decode
finds nothing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import reedsolo

from clipgate.errors import BadInput

ALGORITHM = "org.clipgate.watermark.dwtdctsvd-rs.1"
KEY_BYTES = 5
ECC_BYTES = 4
BITS = 8 * (KEY_BYTES + ECC_BYTES)
SCALE = 104  # the quantisation step of each block's largest singular value: strength vs PSNR
BLOCK = 8
# Whitening: fixed, so every process embeds and reads the same bits.
_MASK = np.random.default_rng(0x636C6970).integers(0, 2, BITS).astype(np.uint8)
_RS = reedsolo.RSCodec(ECC_BYTES)
# A read is believed only when the bits, averaged over the frames read, lean this far on average
# from the undecided 0.5 (0..1: 1 = every block agrees).
MIN_MARGIN = 0.2
READ_FRAMES = 8  # frames read per try
READ_STRIDE = 4  # every 4th frame: the first READ_FRAMES * READ_STRIDE frames are decoded
RELEASE_CRF = 16  # the watermarked clip's re-encode: near-transparent next to the watermark


@dataclass(frozen=True)
class Marked:
    """A watermarked copy: frames written, and what the mark cost."""

    key: int
    frames: int
    psnr_db: float  # mean over frames, of the marked frames against the decoded input's
    ms_per_frame: float  # embedding alone


@dataclass(frozen=True)
class Read:
    """A key read back from a file's pixels."""

    key: int
    confidence: float  # 0..1: how far the averaged bits lean from undecided
    errors: int  # bytes the Reed-Solomon code corrected
    frames: int


def new_key() -> int:
    """A random, non-zero key of KEY_BYTES bytes."""
    return secrets.randbits(8 * KEY_BYTES) or 1


def value(key: int) -> str:
    """The key as the soft-binding assertion's value (hexadecimal)."""
    return f"{key:0{2 * KEY_BYTES}x}"


def payload_bits(key: int) -> np.ndarray:
    """(BITS,) uint8 0/1: key and parity, whitened."""
    if not 0 < key < 1 << (8 * KEY_BYTES):
        raise ValueError(f"a watermark key is 1..2^{8 * KEY_BYTES}-1, not {key}")
    code = bytes(_RS.encode(key.to_bytes(KEY_BYTES, "big")))
    return np.unpackbits(np.frombuffer(code, np.uint8)) ^ _MASK


def decode_bits(scores: np.ndarray) -> tuple[int, int] | None:
    """(key, bytes corrected) from (BITS,) soft bits in 0..1, or None when they are no codeword."""
    bits = (np.asarray(scores) > 0.5).astype(np.uint8) ^ _MASK
    try:
        data, _, errata = _RS.decode(bytes(np.packbits(bits)))
    except reedsolo.ReedSolomonError:
        return None
    key = int.from_bytes(bytes(data), "big")
    return (key, len(errata)) if key else None


def _blocks(approx: np.ndarray) -> np.ndarray:
    """(n, BLOCK, BLOCK) copies of approx's whole blocks, row by row (the library's order)."""
    nr, nc = approx.shape[0] // BLOCK, approx.shape[1] // BLOCK
    return (approx[: nr * BLOCK, : nc * BLOCK].reshape(nr, BLOCK, nc, BLOCK)
            .transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK).copy())


def _put_blocks(approx: np.ndarray, blocks: np.ndarray) -> None:
    nr, nc = approx.shape[0] // BLOCK, approx.shape[1] // BLOCK
    approx[: nr * BLOCK, : nc * BLOCK] = (blocks.reshape(nr, nc, BLOCK, BLOCK)
                                          .transpose(0, 2, 1, 3).reshape(nr * BLOCK, nc * BLOCK))


def _approx(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U plane's Haar approximation, the YUV frame) of a BGR frame. The approximation is what
    pywt.dwt2(plane, "haar") gives, each 2x2 square's sum halved, without the three detail
    planes the watermark never touches (pywt's transform and its inverse were a fifth of the
    time of marking a frame)."""
    rows, cols = bgr.shape[:2]
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    u = yuv[: rows // 4 * 4, : cols // 4 * 4, 1].astype(np.float64)
    return (u[0::2, 0::2] + u[0::2, 1::2] + u[1::2, 0::2] + u[1::2, 1::2]) / 2.0, yuv


# Power-iteration steps for each block's top singular vectors (top_singular). A block of the
# chroma plane is all positive (U is offset by 128), so its largest singular value stands far
# above the next and a few steps converge to float precision; a block that has not is done by SVD.
POWER_STEPS = 6


def top_singular(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s, u, v): each block's largest singular value (n,) and its left and right singular
    vectors (n, BLOCK). Only these are used, and a full SVD of every block computed the other
    seven too: it was half the time of marking a frame. Power iteration on B^T B, checked: blocks
    whose vector is not an eigenvector to 1e-9 (flat or degenerate ones) get np.linalg.svd."""
    gram = np.einsum("nij,nik->njk", blocks, blocks)
    v = np.full(blocks.shape[:2], 1.0 / np.sqrt(blocks.shape[2]))
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero block: NaN, then SVD
        for _ in range(POWER_STEPS):
            v = np.einsum("njk,nk->nj", gram, v)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        gv = np.einsum("njk,nk->nj", gram, v)
        lam = np.einsum("nj,nj->n", v, gv)
        s = np.sqrt(lam)
        u = np.einsum("nij,nj->ni", blocks, v) / s[:, None]
        off = np.linalg.norm(gv - lam[:, None] * v, axis=1) > 1e-9 * lam
    bad = off | ~np.isfinite(s) | ~np.isfinite(u).all(axis=1) | ~(lam > 0)
    if bad.any():
        uu, ss, vt = np.linalg.svd(blocks[bad])
        s[bad], u[bad], v[bad] = ss[:, 0], uu[:, :, 0], vt[:, 0, :]
    return s, u, v


def embed_frame(bgr: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """bgr (h, w, 3) uint8 with the payload bits in it. Frames under 32 px a side are left as
    they are (no whole block fits)."""
    rows, cols = bgr.shape[:2]
    if min(rows, cols) < 4 * BLOCK:
        return bgr
    approx, yuv = _approx(bgr)
    blocks = _blocks(approx)
    s, u, v = top_singular(blocks)
    wanted = np.resize(np.asarray(bits, np.float64), len(blocks))  # bit k % BITS for block k
    top = (s // SCALE + 0.25 + 0.5 * wanted) * SCALE
    # Only the largest singular value moves: add its change along its own singular vectors.
    change = np.zeros_like(approx)
    _put_blocks(change, (top - s)[:, None, None] * (u[:, :, None] * v[:, None, :]))
    # The inverse Haar transform is linear, and with the details unchanged it gives each pixel
    # of a 2x2 square half its approximation coefficient's change.
    h, w = rows // 4 * 4, cols // 4 * 4
    plane = yuv[:h, :w, 1] + np.repeat(np.repeat(change / 2.0, 2, axis=0), 2, axis=1)
    yuv[:h, :w, 1] = np.clip(np.rint(plane), 0, 255).astype(np.uint8)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)


def frame_scores(bgr: np.ndarray) -> np.ndarray | None:
    """(BITS,) soft bits, each the share of its blocks that read 1; None for a frame too small."""
    if min(bgr.shape[:2]) < 4 * BLOCK:
        return None
    approx, _ = _approx(bgr)
    top = top_singular(_blocks(approx))[0]
    ones = (top % SCALE > 0.5 * SCALE).astype(np.float64)
    which = np.arange(len(ones)) % BITS
    counts = np.bincount(which, minlength=BITS)
    sums = np.bincount(which, weights=ones, minlength=BITS)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.5).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of b against a (uint8 images of one size), in dB."""
    # OpenCV's norm in C: numpy's float copies of both frames cost 3-4 ms a frame, a third of
    # marking it.
    mse = cv2.norm(a, b, cv2.NORM_L2SQR) / a.size
    return 99.0 if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def watermark_video(src: Path, dst: Path, key: int, *, crf: int = RELEASE_CRF) -> Marked:
    """Write dst (H.264 MP4/MOV, yuv420p): src's video with key in every frame, at src's frame
    rate and timing; audio streams are copied. BadInput when src cannot be decoded."""
    bits = payload_bits(key)
    psnrs: list[float] = []
    spent = 0.0
    try:
        with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            rate = vin.average_rate or vin.guessed_rate or 24
            vout = out.add_stream("libx264", rate=rate)
            vout.width, vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
            vout.pix_fmt = "yuv420p"
            vout.time_base = vin.time_base
            vout.options = {"crf": str(crf), "preset": "fast"}
            audio = {a.index: out.add_stream_from_template(a) for a in inp.streams.audio}
            for packet in inp.demux(vin, *inp.streams.audio):
                if packet.stream.index in audio:
                    if packet.dts is not None:
                        packet.stream = audio[packet.stream.index]
                        out.mux(packet)
                    continue
                for frame in packet.decode():
                    bgr = frame.to_ndarray(format="bgr24")[: vout.height, : vout.width]
                    t0 = time.perf_counter()
                    marked = embed_frame(bgr, bits)
                    spent += time.perf_counter() - t0
                    psnrs.append(psnr(bgr, marked))
                    new = av.VideoFrame.from_ndarray(marked, format="bgr24")
                    new.pts, new.time_base = frame.pts, frame.time_base
                    for p in vout.encode(new):
                        out.mux(p)
            for p in vout.encode():
                out.mux(p)
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        dst.unlink(missing_ok=True)
        raise BadInput(f"{Path(src).name}: cannot watermark the video ({e})") from e
    if not psnrs:
        dst.unlink(missing_ok=True)
        raise BadInput(f"{Path(src).name}: the video has no frames")
    return Marked(key, len(psnrs), round(float(np.mean(psnrs)), 2),
                  round(1000 * spent / len(psnrs), 1))


def _first_frames(path: Path, n: int, stride: int) -> list[np.ndarray]:
    """Every stride-th of the first n * stride frames, as BGR (an image: itself)."""
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(c.decode(stream)):
                if i % stride == 0:
                    out.append(frame.to_ndarray(format="bgr24"))
                    if len(out) >= n:
                        break
    except (av.error.FFmpegError, IndexError):
        return out
    return out


def _read_frames(frames: list[np.ndarray]) -> Read | None:
    scores = [s for s in (frame_scores(f) for f in frames) if s is not None]
    if not scores:
        return None
    mean = np.mean(scores, axis=0)
    margin = float(np.mean(np.abs(2.0 * mean - 1.0)))
    decoded = decode_bits(mean)
    if decoded is None or margin < MIN_MARGIN:
        return None
    return Read(decoded[0], round(margin, 4), decoded[1], len(scores))


def read_watermark(path: Path, *, frames: int = READ_FRAMES) -> Read | None:
    """The key in path's first frames, or None. Frames are read as they are: a copy scaled or
    cropped has its blocks moved and is left to the fingerprint (trying other sizes cost ~1 s each
    and still failed after a re-encode)."""
    got = _first_frames(Path(path), frames, READ_STRIDE)
    return _read_frames(got) if got else None
