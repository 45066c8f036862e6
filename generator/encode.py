"""Writing RGB frames to an H.264 MP4 (libx264, yuv420p) with PyAV, atomically."""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from clipgate.errors import BadInput

DEFAULT_CRF = 20
# superfast keeps a 4 s 360p clip to about a quarter second of encoding; ample for a stand-in.
DEFAULT_PRESET = "superfast"
_PREFETCH = 8  # frames rendered ahead on a worker thread while the encoder works


def write_mp4(
    frames: Iterable[np.ndarray],
    out_path: Path,
    *,
    fps: int,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
) -> int:
    """Encode frames, each (height, width, 3) uint8 RGB with even sides, to out_path; return the frame count.

    Writes to a temporary file beside out_path and renames it into place, so a failure never leaves
    a half-written video where a reader could find it.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part", dir=out_path.parent)
    os.close(fd)
    try:
        count = _encode(_prefetch(frames, _PREFETCH), tmp_name, fps=fps, crf=crf, preset=preset)
        os.replace(tmp_name, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return count


def _encode(frames: Iterable[np.ndarray], path: str, *, fps: int, crf: int, preset: str) -> int:
    count = 0
    # Frames carry their own time base: the muxer rewrites stream.time_base (to 1/12288) once the
    # header is written, so reading it back mid-stream would scale every later pts wrongly.
    time_base = Fraction(1, fps)
    with av.open(path, mode="w", format="mp4") as container:
        stream = None
        for array in frames:
            if stream is None:
                height, width = _check_frame(array)
                stream = container.add_stream(
                    "libx264", rate=fps, options={"crf": str(crf), "preset": preset}
                )
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.time_base = time_base
            elif array.shape != (stream.height, stream.width, 3):
                raise BadInput(f"frame {count} has shape {array.shape}, expected {(stream.height, stream.width, 3)}")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array, dtype=np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = count
            frame.time_base = time_base
            container.mux(stream.encode(frame))
            count += 1
        if stream is None:
            raise BadInput("no frames to encode")
        container.mux(stream.encode(None))
    return count


def _check_frame(array: np.ndarray) -> tuple[int, int]:
    if array.ndim != 3 or array.shape[2] != 3:
        raise BadInput(f"frames must be (height, width, 3) RGB, got shape {array.shape}")
    height, width = array.shape[:2]
    if height % 2 or width % 2:
        raise BadInput(f"H.264 yuv420p needs even sides, got {width}x{height}")
    return height, width


_DONE = object()


def _prefetch(frames: Iterable[np.ndarray], depth: int) -> Iterator[np.ndarray]:
    """Iterate frames produced on a worker thread, up to depth ahead.

    numpy and x264 both release the GIL, so rendering the next frames overlaps encoding this one.
    An exception in the producer is re-raised here; abandoning the iterator stops the producer.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        slots.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item: object = _DONE
        except BaseException as exc:  # handed to the consumer, which re-raises it
            item = exc
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="clipgate-frames", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
