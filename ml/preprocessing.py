"""The one image pipeline shared by training and serving.

Training and the web worker must turn a photo into exactly the same tensor,
otherwise the shipped accuracy numbers mean nothing; both call
``prepare_batch`` (a parity test guards it).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps

try:  # HEIC/HEIF photos from phones; optional for pure training use.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is in requirements
    pass

#: Normalisation modes a model's metadata may name.
MODES = ("efficientnet_lite", "mobilenet_v2", "densenet", "unit", "raw")
#: Steps that may follow a mode after "+" (``"efficientnet_lite+sog6"``), applied to the 0..255
#: pixels before the normalisation. The metadata's one string names the whole pipeline, so every
#: caller (training, the worker, evaluation, export, the heatmap) applies the same steps.
COLOUR_STEPS = ("sog6",)
#: Shades-of-Gray gains are kept in this range: a flat or one-colour picture has no illuminant to
#: estimate, and an unbounded gain would turn sensor noise in an empty channel into colour.
SOG_MAX_GAIN = 4.0

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def open_image(source: str | Path | BinaryIO, target_size: Sequence[int] | None = None) -> Image.Image:
    """Decode a photo to RGB with its EXIF orientation applied.

    ``target_size`` (h, w) lets JPEG decode at a reduced scale (draft mode),
    which is several times faster for 12-megapixel phone photos.
    """
    img = Image.open(source)
    if target_size is not None and img.format == "JPEG":
        h, w = target_size
        img.draft("RGB", (w, h))
    img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB with any transparency flattened onto white (not black)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bit instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) or 1.0
        img = Image.fromarray((arr * (255.0 / max(peak, 255.0))).astype(np.uint8), "L")
    return img.convert("RGB")


def resize(img: Image.Image, input_size: Sequence[int]) -> np.ndarray:
    """The whole photo squeezed to (h, w) as uint8: no crop, so nothing at the edge is lost."""
    h, w = int(input_size[0]), int(input_size[1])
    img = to_rgb(img)
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)


def shades_of_gray(pixels: np.ndarray, p: int = 6) -> np.ndarray:
    """Shades-of-Gray colour constancy (Finlayson & Trezzi, 2004) on 0..255 RGB, per photo.

    The illuminant of each channel is estimated as its Minkowski p-mean over the photo
    (p = 1 is grey-world, p = infinity max-RGB; p = 6 is what the ISIC challenge winners used,
    Barata et al. 2015), and each channel is scaled so that illuminant becomes grey at the same
    mean level. Dermatoscopes and phone cameras differ mostly in exactly this cast.
    Accepts (H, W, 3) or (N, H, W, 3); returns float32 in 0..255.
    """
    x = np.asarray(pixels, dtype=np.float32)
    spatial = (-3, -2)
    # the p-th power of 255 overflows nothing in float32 (255**6 = 2.7e14)
    illuminant = np.power(np.mean(np.power(x, p), axis=spatial, keepdims=True), 1.0 / p)
    grey = illuminant.mean(axis=-1, keepdims=True)
    gain = np.clip(grey / np.maximum(illuminant, 1e-3), 1.0 / SOG_MAX_GAIN, SOG_MAX_GAIN)
    return np.clip(x * gain, 0.0, 255.0).astype(np.float32)


def split_mode(mode: str) -> tuple[str, tuple[str, ...]]:
    """``"efficientnet_lite+sog6"`` -> (``"efficientnet_lite"``, (``"sog6"``,)); unknown parts raise."""
    base, *steps = mode.split("+")
    if base not in MODES:
        raise ValueError(f"unknown preprocessing mode {base!r}; expected one of {MODES}")
    unknown = [step for step in steps if step not in COLOUR_STEPS]
    if unknown:
        raise ValueError(f"unknown preprocessing step(s) {unknown} in {mode!r}; expected {COLOUR_STEPS}")
    return base, tuple(steps)


def with_colour_constancy(mode: str, colour_constancy: str | None) -> str:
    """The mode string for a network's own normalisation plus an optional colour step."""
    base, _ = split_mode(mode)
    return base if colour_constancy in (None, "", "none") else f"{base}+{split_mode('raw+' + colour_constancy)[1][0]}"


def normalize(batch: np.ndarray, mode: str) -> np.ndarray:
    """Map uint8 RGB values to what the network was trained on (colour step first, if named)."""
    mode, steps = split_mode(mode)
    x = np.asarray(batch, dtype=np.float32)
    if "sog6" in steps:
        x = shades_of_gray(x, 6)
    if mode == "efficientnet_lite":
        return (x - 127.0) / 128.0
    if mode == "mobilenet_v2":
        return x / 127.5 - 1.0
    if mode == "densenet":
        return (x / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD
    if mode == "unit":
        return x / 255.0
    if mode == "raw":
        return x
    raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {MODES}")


def prepare_batch(images: Iterable[Image.Image], input_size: Sequence[int], mode: str) -> np.ndarray:
    """Resize and normalise decoded photos into one float32 (N, H, W, 3) batch."""
    arrays = [resize(img, input_size) for img in images]
    if not arrays:
        return np.zeros((0, int(input_size[0]), int(input_size[1]), 3), dtype=np.float32)
    return normalize(np.stack(arrays), mode)
