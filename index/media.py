"""Reading media: sniff what a file is, refuse what we can't take, and yield its sampled frames.

Images go through Pillow; videos through PyAV. Only the sampled frames are converted to RGB,
so the cost of a video is its decode plus a few conversions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from clipgate.errors import BadInput, TooLarge
from index.sampling import FrameSampler

log = logging.getLogger(__name__)

IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# PyAV's demuxer names for the containers we accept.
VIDEO_CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/webm"}
# Sampled frames are scaled so their long side is at most this: every signal downsamples further.
MAX_SAMPLE_SIDE = 640
# The shortest side a sampled frame may have: pHash works on a 32x32 picture and ORB's patches
# are 31 pixels wide, so a thinner frame says nothing (and a 1-pixel side broke OpenCV's resize).
# With MAX_SAMPLE_SIDE this also caps the aspect ratio at 20:1.
MIN_SAMPLE_SIDE = 32


class MediaError(BadInput):
    """The file is not media we accept, or it is broken."""


@dataclass(frozen=True)
class MediaInfo:
    kind: str  # "image" | "video"
    mime: str
    width: int
    height: int
    duration_s: float  # 0 for images
    fps: float | None


@dataclass
class Frame:
    t_s: float  # seconds from the start of the media
    rgb: np.ndarray  # (h, w, 3) uint8


def probe(path: Path, *, max_frame_pixels: int) -> MediaInfo:
    """What the file is, without decoding all of it. Raises MediaError / TooLarge."""
    try:
        with Image.open(path) as im:
            fmt, width, height = im.format, im.width, im.height
    except (UnidentifiedImageError, Image.DecompressionBombError):
        fmt = None  # not an image (or one too big to even open): let PyAV try
    except Exception as e:  # noqa: BLE001
        # Pillow's plugins raise OSError, SyntaxError, ValueError, struct.error... on damaged
        # headers; whatever it is, the upload is a damaged image, not a server fault.
        raise MediaError(f"{path.name}: image is damaged ({type(e).__name__}: {e})") from e
    if fmt is not None:
        if fmt not in IMAGE_FORMATS:
            raise MediaError(f"{path.name}: image format {fmt} is not accepted (images: JPEG, "
                             "PNG, WebP; videos: MP4, MOV, WebM, MKV)")
        _check_pixels(path, width, height, max_frame_pixels)
        return MediaInfo("image", IMAGE_FORMATS[fmt], width, height, 0.0, None)
    try:
        with av.open(str(path)) as container:
            mime = VIDEO_CONTAINERS.get(container.format.name)
            if mime is None:
                raise MediaError(
                    f"{path.name}: {container.format.name} is not accepted (images: JPEG, PNG, "
                    "WebP; videos: MP4, MOV, WebM, MKV)"
                )
            if not container.streams.video:
                raise MediaError(f"{path.name}: has no video stream")
            if len(container.streams.video) > 1:
                # Only one would be checked, yet a release would carry them all.
                raise MediaError(f"{path.name}: has {len(container.streams.video)} video "
                                 "streams; submit a file with one")
            stream = container.streams.video[0]
            if stream.codec_context is None:  # a stream FFmpeg has no decoder for
                raise MediaError(f"{path.name}: its video stream cannot be decoded")
            w, h = stream.codec_context.width, stream.codec_context.height
            _check_pixels(path, w, h, max_frame_pixels)
            duration = _duration_s(container, stream)
            fps = float(stream.average_rate) if stream.average_rate else None
            return MediaInfo("video", mime, w, h, duration, fps)
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        # PyAV decodes container metadata as UTF-8: damaged boxes raise UnicodeDecodeError.
        raise MediaError(f"{path.name}: not a readable image or video ({_ffmpeg_reason(e)})") from e


def iter_sampled_frames(
    path: Path,
    info: MediaInfo,
    *,
    sample_fps: float,
    shot_change_threshold: float,
    max_duration_s: float,
    timings: dict[str, float] | None = None,
    skip_threshold: float = 0.0,
    max_gap_s: float = 0.0,
) -> Iterator[Frame]:
    """Yield the frames to fingerprint: once every 1/sample_fps seconds and at every shot change.

    If `timings` is given, the seconds spent deciding what to sample are added to timings["sample"].
    A due frame within skip_threshold of the last kept one is skipped until max_gap_s has passed.
    """
    if info.kind == "image":
        yield Frame(0.0, _load_image(path))
        return
    if info.duration_s > max_duration_s:
        raise TooLarge(
            f"{path.name}: {info.duration_s:.0f} s is longer than the limit of {max_duration_s:.0f} s "
            "(CLIPGATE_MAX_DURATION_S)"
        )
    sampler = FrameSampler(sample_fps=sample_fps, shot_change_threshold=shot_change_threshold,
                           skip_threshold=skip_threshold, max_gap_s=max_gap_s)
    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                decoded += 1
                t = float(frame.time) if frame.time is not None else decoded / (info.fps or 25.0)
                if t > max_duration_s:
                    raise TooLarge(f"{path.name}: longer than the limit of "
                                   f"{max_duration_s:.0f} s (CLIPGATE_MAX_DURATION_S)")
                t0 = time.perf_counter()
                thumb = _luma_thumb(frame)
                keep = sampler.take(t, thumb)
                if timings is not None:
                    timings["sample"] = timings.get("sample", 0.0) + time.perf_counter() - t0
                if keep:
                    w, h = _sample_size(frame.width, frame.height)
                    yield Frame(t, frame.to_ndarray(width=w, height=h, format="rgb24"))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"{path.name}: video is damaged or truncated ({_ffmpeg_reason(e)})") from e
    if decoded == 0:
        raise MediaError(f"{path.name}: the video has no frames")


def _luma_thumb(frame: av.VideoFrame) -> np.ndarray:
    """A ~32x32 grey thumbnail for shot detection. For YUV frames the Y plane is already grey, so
    striding it costs next to nothing; a full swscale conversion per frame cost more than decoding."""
    if frame.format.name.startswith(("yuv", "yuvj", "nv12")):
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
        sy, sx = max(1, frame.height // 32), max(1, frame.width // 32)
        return y[: sy * 32 : sy, : sx * 32 : sx]
    return frame.to_ndarray(width=32, height=32, format="gray")


def _load_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((MAX_SAMPLE_SIDE, MAX_SAMPLE_SIDE))
            return np.asarray(im)
    except Exception as e:  # noqa: BLE001 - truncated or corrupt data, whichever error Pillow picks
        raise MediaError(f"{path.name}: image is damaged ({type(e).__name__}: {e})") from e


def _sample_size(w: int, h: int, max_side: int = MAX_SAMPLE_SIDE) -> tuple[int, int]:
    scale = min(1.0, max_side / max(w, h))
    # Even sizes keep swscale happy with chroma-subsampled input.
    return max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)


def _check_pixels(path: Path, w: int, h: int, limit: int) -> None:
    if w <= 0 or h <= 0:
        raise MediaError(f"{path.name}: frame size {w}x{h} is invalid")
    # Before any pixel is decoded: too thin a frame never reaches a signal (or OpenCV).
    if min(w, h) < MIN_SAMPLE_SIDE:
        raise MediaError(f"{path.name}: frames of {w}x{h} are too small to fingerprint; each "
                         f"side must be at least {MIN_SAMPLE_SIDE} pixels")
    if min(w, h) * MAX_SAMPLE_SIDE < MIN_SAMPLE_SIDE * max(w, h):
        raise MediaError(f"{path.name}: frames of {w}x{h} are too thin to fingerprint; the long "
                         f"side may be at most {MAX_SAMPLE_SIDE // MIN_SAMPLE_SIDE} times the "
                         "short side")
    if w * h > limit:
        raise TooLarge(
            f"{path.name}: frames of {w}x{h} exceed the limit of {limit} pixels "
            "(CLIPGATE_MAX_FRAME_PIXELS)"
        )


def _duration_s(container: av.container.InputContainer, stream: av.video.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _ffmpeg_reason(e: av.error.FFmpegError) -> str:
    return getattr(e, "strerror", None) or str(e)


def frames_at(
    path: Path, times: list[float], *, max_side: int = MAX_SAMPLE_SIDE
) -> list[np.ndarray]:
    """The frames shown at each of `times` seconds (an image: the image each time), as RGB
    uint8, in one decoding pass; for evidence pictures."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            return [np.asarray(im)] * len(times)
    except (UnidentifiedImageError, OSError):
        pass
    wanted = sorted(range(len(times)), key=lambda i: times[i])
    out: list[np.ndarray | None] = [None] * len(times)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # a provenance lookup waits on it: 10 s clip 0.20 -> 0.14 s
            last = None
            for frame in container.decode(stream):
                last = frame
                while wanted and frame.time is not None and frame.time >= times[wanted[0]] - 1e-3:
                    out[wanted.pop(0)] = _rgb(frame, max_side)
                if not wanted:
                    break
            if last is None:
                raise MediaError(f"{path.name}: the video has no frames")
            for i in wanted:  # past the end: the last frame
                out[i] = _rgb(last, max_side)
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        # PyAV decodes container metadata as UTF-8: damaged boxes raise UnicodeDecodeError.
        raise MediaError(f"{path.name}: not a readable image or video ({_ffmpeg_reason(e)})") from e
    return out  # type: ignore[return-value]


def _rgb(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    w, h = _sample_size(frame.width, frame.height, max_side)
    return frame.to_ndarray(width=w, height=h, format="rgb24")
