"""The transformations a generated clip applies to a work, one family at a time or in pairs.

A work is a `Source`: a function from time (s) to an RGB frame, so a still photo and a video are
treated alike. Each family is a function (frame, t, params) -> frame; `sample_params` draws the
family's parameters once per query, so a query is one consistent edit, not noise per frame.
Frames are 640x360 RGB uint8.

The harder families (caption, pip_small, posterise, cartoon, tight_crop, reaction, lowres) hide,
shrink, restyle or degrade the work much more than the first ones; `lowres` is not a frame edit
but how the whole clip is encoded (queries.write), so `render` leaves the picture alone for it.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from bench.quality import overlays

W, H = 640, 360
Source = Callable[[float], np.ndarray]  # seconds -> (h, w, 3) uint8

# Families from the issue, by name. "pip", "panzoom", "speed" and "segment" change the clip's
# layout in time or space; the others edit each frame.
FIRST_FAMILIES = ("crop", "scale", "pad", "mirror", "rotate", "blur", "noise", "color",
                  "grayscale", "reencode", "text", "logo", "pip", "panzoom", "speed", "segment")
# The harder families: text over a third of the frame, a picture-in-picture at 25-30% of the
# width, two restyles, crops keeping 20-40% of the area, a reaction-video layout, and a
# low-bitrate half-size encoding.
HARDER_FAMILIES = ("caption", "pip_small", "posterise", "cartoon", "tight_crop", "reaction",
                   "lowres")
LAYOUT_FAMILIES = ("pip", "panzoom", "speed", "segment", "pip_small", "reaction")
ENCODE_FAMILIES = ("lowres",)  # how the clip is encoded: queries.write, with encode_options
FAMILIES = FIRST_FAMILIES + HARDER_FAMILIES
FRAME_FAMILIES = tuple(f for f in FAMILIES if f not in LAYOUT_FAMILIES + ENCODE_FAMILIES)
# Pairs of families applied together (the first one's layout, both edits).
PAIRS = (("crop", "mirror"), ("blur", "text"), ("pip", "color"), ("rotate", "noise"),
         ("pad", "logo"), ("grayscale", "crop"), ("mirror", "reencode"), ("scale", "text"),
         ("panzoom", "color"), ("logo", "blur"), ("segment", "mirror"), ("pip", "mirror"))
# Three families at once (named "a+b+c" in the report): the hard ones stacked.
TRIPLES = (("tight_crop", "color", "caption"), ("pip_small", "noise", "lowres"),
           ("mirror", "blur", "caption"), ("posterise", "crop", "logo"),
           ("rotate", "color", "logo"), ("reaction", "grayscale", "lowres"),
           ("cartoon", "mirror", "text"))


@dataclass
class Edit:
    family: str
    params: dict[str, Any]


def fit(rgb: np.ndarray, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """Scale and centre-crop to fill size (w, h), as a video generator frames a picture."""
    im = Image.fromarray(rgb)
    s = max(size[0] / im.width, size[1] / im.height)
    im = im.resize((max(size[0], round(im.width * s)), max(size[1], round(im.height * s))),
                   Image.BILINEAR)
    left, top = (im.width - size[0]) // 2, (im.height - size[1]) // 2
    return np.asarray(im.crop((left, top, left + size[0], top + size[1])))


def frame_size(w: int, h: int) -> tuple[int, int]:
    """The 360p frame (w, h) that shows a w x h picture whole: its aspect, within 640x360."""
    s = min(W / w, H / h)
    return max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2)


def still(rgb: np.ndarray, drift: float = 0.04, size: tuple[int, int] | None = None) -> Source:
    """A photo shown with a slow camera drift (a generated clip rarely holds a frame still), in
    a frame of its own aspect unless size (w, h) is given."""
    size = size or frame_size(rgb.shape[1], rgb.shape[0])

    def frame(t: float) -> np.ndarray:
        c = drift * min(1.0, t / 10.0)
        h, w = rgb.shape[:2]
        dx, dy = int(w * c / 2), int(h * c / 2)
        return fit(rgb[dy:h - dy or h, dx:w - dx or w], size)
    return frame


def video(frames: list[np.ndarray], fps: float) -> Source:
    """A decoded video as a source; past its end it holds the last frame."""
    def frame(t: float) -> np.ndarray:
        return frames[min(len(frames) - 1, int(t * fps))]
    return frame


def sample_params(family: str, rng: random.Random) -> dict[str, Any]:
    u = rng.uniform
    if family == "crop":
        area = 1.0 - u(0.10, 0.50)  # 10-50% of the area cut away
        aspect = u(0.8, 1.25)
        fw, fh = min(1.0, np.sqrt(area * aspect)), min(1.0, np.sqrt(area / aspect))
        return {"w": fw, "h": fh, "x": u(0, 1 - fw), "y": u(0, 1 - fh)}
    if family == "scale":
        return {"sx": u(0.6, 1.0), "sy": u(0.6, 1.0)}
    if family == "pad":
        return {"s": u(0.6, 0.9), "colour": rng.choice([(0, 0, 0), (255, 255, 255), (30, 30, 90)])}
    if family == "rotate":
        return {"deg": rng.choice([-1, 1]) * u(5, 15)}
    if family == "blur":
        return {"radius": u(2.0, 4.0)}
    if family == "noise":
        return {"sigma": u(10, 25), "seed": rng.randrange(1 << 30)}
    if family == "color":
        return {"brightness": u(0.6, 1.4), "contrast": u(0.6, 1.4), "saturation": u(0.3, 1.8),
                "hue": u(-0.15, 0.15)}
    if family == "reencode":
        return {"quality": rng.randint(6, 15), "down": u(0.35, 0.6)}
    if family == "text":
        words = ["BREAKING NEWS", "SUBSCRIBE NOW", "made with AI", "LIMITED OFFER",
                 "the best moments", "watch till the end"]
        return {"lines": [rng.choice(words) for _ in range(rng.randint(2, 3))],
                "y": u(0.1, 0.5), "size": rng.randint(28, 44)}
    if family == "logo":
        return {"n": rng.randint(2, 4), "seed": rng.randrange(1 << 30), "s": u(0.15, 0.25)}
    if family == "pip":
        s = u(0.30, 0.60)
        return {"s": s, "x": u(0, 1 - s), "y": u(0, 1 - s)}
    if family == "panzoom":
        z0, z1 = u(0.55, 0.8), u(0.55, 0.8)
        return {"z0": z0, "z1": z1, "x0": u(0, 1 - z0), "y0": u(0, 1 - z0),
                "x1": u(0, 1 - z1), "y1": u(0, 1 - z1)}
    if family == "speed":
        return {"factor": rng.choice([0.5, 0.75, 1.5, 2.0])}
    return _harder_params(family, rng)


def _harder_params(family: str, rng: random.Random) -> dict[str, Any]:
    u = rng.uniform
    if family == "caption":
        return overlays.caption_params(rng)
    if family == "pip_small":
        s = u(0.25, 0.30)
        return {"s": s, "x": u(0, 1 - s), "y": u(0, 1 - s)}
    if family == "posterise":
        return {"levels": rng.choice([2, 3, 3, 4])}  # per channel
    if family == "cartoon":
        return {"method": rng.choice(["bilateral", "stylize"]), "passes": rng.randint(2, 4),
                "sigma_s": u(40, 80), "sigma_r": u(0.35, 0.55), "levels": rng.randint(5, 9),
                "edge_block": rng.choice([7, 9, 11]), "edge_c": rng.randint(2, 5)}
    if family == "tight_crop":  # 60-80% of the area cut away, the frame's aspect kept
        f = float(np.sqrt(u(0.20, 0.40)))
        return {"f": f, "x": u(0, 1 - f), "y": u(0, 1 - f)}
    if family == "reaction":
        return overlays.reaction_params(rng)
    if family == "lowres":
        return {"scale": 0.5, "crf": rng.randint(38, 45)}
    return {}


def encode_options(edits: list[Edit]) -> dict[str, Any] | None:
    """How queries.write encodes a clip with these edits: {"scale", "crf"}, or None (default)."""
    return next((dict(e.params) for e in edits if e.family in ENCODE_FAMILIES), None)


def edit_frame(rgb: np.ndarray, e: Edit) -> np.ndarray:
    """Apply one per-frame edit to a 640x360 frame (layout families pass through)."""
    f, p = e.family, e.params
    H, W = rgb.shape[:2]  # noqa: N806 - the frame's own size
    im = Image.fromarray(rgb)
    if f == "crop":
        x0, y0 = int(p["x"] * W), int(p["y"] * H)
        return fit(rgb[y0:y0 + max(8, int(p["h"] * H)), x0:x0 + max(8, int(p["w"] * W))], (W, H))
    if f == "scale":  # anisotropic resize, shown on black
        out = np.zeros_like(rgb)
        w, h = int(W * p["sx"]), int(H * p["sy"])
        small = np.asarray(im.resize((w, h), Image.BILINEAR))
        out[(H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w] = small
        return out
    if f == "pad":
        out = np.empty_like(rgb)
        out[:] = p["colour"]
        w, h = int(W * p["s"]), int(H * p["s"])
        out[(H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w] = np.asarray(
            im.resize((w, h), Image.BILINEAR))
        return out
    if f == "mirror":
        return np.ascontiguousarray(rgb[:, ::-1])
    if f == "rotate":
        return np.asarray(im.rotate(p["deg"], resample=Image.BILINEAR))
    if f == "blur":
        return np.asarray(im.filter(ImageFilter.GaussianBlur(p["radius"])))
    if f == "noise":
        rng = np.random.default_rng(p["seed"])
        noisy = rgb.astype(np.float32) + rng.normal(0, p["sigma"], rgb.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)
    if f == "color":
        im = ImageEnhance.Brightness(im).enhance(p["brightness"])
        im = ImageEnhance.Contrast(im).enhance(p["contrast"])
        im = ImageEnhance.Color(im).enhance(p["saturation"])
        hsv = np.asarray(im.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(p["hue"] * 255)) % 256
        return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    if f == "grayscale":
        return np.asarray(im.convert("L").convert("RGB"))
    if f == "reencode":
        small = im.resize((int(W * p["down"]), int(H * p["down"])), Image.BILINEAR)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=p["quality"])
        return np.asarray(Image.open(buf).convert("RGB").resize((W, H), Image.BILINEAR))
    if f == "text":
        draw = ImageDraw.Draw(im)
        font = _font(p["size"])
        y = int(p["y"] * H)
        for line in p["lines"]:
            draw.rectangle([20, y - 4, W - 20, y + p["size"] + 4], fill=(0, 0, 0))
            draw.text((30, y), line, fill=(255, 230, 0), font=font)
            y += p["size"] + 14
        return np.asarray(im)
    if f == "logo":
        rng = random.Random(p["seed"])
        draw = ImageDraw.Draw(im)
        for _ in range(p["n"]):
            r = int(H * p["s"] / 2)
            cx, cy = rng.randint(r, W - r), rng.randint(r, H - r)
            colour = (rng.randint(180, 255), rng.randint(150, 230), 0)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(0, 0, 0), width=3)
            draw.ellipse([cx - r // 3, cy - r // 3, cx - r // 6, cy - r // 6], fill=(0, 0, 0))
            draw.ellipse([cx + r // 6, cy - r // 3, cx + r // 3, cy - r // 6], fill=(0, 0, 0))
            draw.arc([cx - r // 2, cy - r // 6, cx + r // 2, cy + r // 2], 20, 160,
                     fill=(0, 0, 0), width=4)
        return np.asarray(im)
    return _harder_frame(rgb, e)


def _harder_frame(rgb: np.ndarray, e: Edit) -> np.ndarray:
    f, p = e.family, e.params
    H, W = rgb.shape[:2]  # noqa: N806 - the frame's own size
    if f == "caption":
        return overlays.caption(rgb, p)
    if f == "posterise":
        return posterise(rgb, p["levels"])
    if f == "cartoon":
        return cartoon(rgb, p)
    if f == "tight_crop":
        x0, y0 = int(p["x"] * W), int(p["y"] * H)
        return fit(rgb[y0:y0 + max(8, round(p["f"] * H)), x0:x0 + max(8, round(p["f"] * W))],
                   (W, H))
    return rgb


def posterise(rgb: np.ndarray, levels: int) -> np.ndarray:
    """Each channel cut to `levels` values spread over 0-255."""
    q = np.minimum(rgb.astype(np.uint16) * levels // 256, levels - 1)
    return (q * 255 // (levels - 1)).astype(np.uint8)


def cartoon(rgb: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Flat colours (repeated bilateral filtering and quantisation, or OpenCV's stylization) and
    dark edges (adaptive threshold of the blurred grey picture)."""
    if p["method"] == "stylize":
        flat = cv2.stylization(np.ascontiguousarray(rgb), sigma_s=p["sigma_s"],
                               sigma_r=p["sigma_r"])
    else:
        flat = np.ascontiguousarray(rgb)
        for _ in range(p["passes"]):
            flat = cv2.bilateralFilter(flat, 9, 75, 7)
        flat = posterise(flat, p["levels"])
    grey = cv2.medianBlur(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), 5)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY,
                                  p["edge_block"], p["edge_c"])
    out = flat.copy()
    out[edges == 0] = (out[edges == 0] * 0.15).astype(np.uint8)
    return out


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def layout(work: Source, t: float, e: Edit, background: Source,
           face: Source | None = None) -> np.ndarray:
    """The work's frame at clip time t under a layout family (pip, pip_small, panzoom, speed,
    reaction: face is its face-cam, the background when None)."""
    p = e.params
    if e.family == "speed":
        return work(t * p["factor"])
    if e.family == "reaction":
        return overlays.reaction(work(t), (face or background)(t), fit(background(t)), p)
    if e.family in ("pip", "pip_small"):
        out = fit(background(t)).copy()  # the other scene fills a 640x360 frame
        rgb = work(t)
        w = int(W * p["s"])
        h = min(H, int(w * rgb.shape[0] / rgb.shape[1]))
        x, y = min(int(p["x"] * W), W - w), min(int(p["y"] * H), H - h)
        out[y:y + h, x:x + w] = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
        return out
    if e.family == "panzoom":
        a = min(1.0, t / 6.0)
        z = p["z0"] + (p["z1"] - p["z0"]) * a
        x = p["x0"] + (p["x1"] - p["x0"]) * a
        y = p["y0"] + (p["y1"] - p["y0"]) * a
        rgb = work(t)
        h, w = rgb.shape[:2]
        return fit(rgb[int(y * h):int((y + z) * h), int(x * w):int((x + z) * w)], (w, h))
    return work(t)


def render(work: Source, edits: list[Edit], background: Source, t: float,
           face: Source | None = None) -> np.ndarray:
    """One frame of a query clip: the first layout edit places the work, then every frame edit
    applies to the work's picture (before it is pasted small, for pip). Encoding families
    (lowres) leave the frame alone: queries.write applies them."""
    frame_edits = [e for e in edits if e.family in FRAME_FAMILIES]
    layouts = [e for e in edits if e.family in LAYOUT_FAMILIES and e.family != "segment"]

    def edited(tt: float) -> np.ndarray:
        rgb = work(tt)
        for e in frame_edits:
            rgb = edit_frame(rgb, e)
        return rgb

    if layouts:
        return layout(edited, t, layouts[0], background, face)
    return edited(t)
