"""On-the-fly augmentation for whole-network training: a new random view of a photo every time.

The views are meant to look like other clinics and cameras rather than like the Vienna
dermatoscope: any crop of the lesion, any orientation (skin has no "up"), other exposure,
contrast, saturation and gamma, soft focus, sensor noise, JPEG re-compression, and the dark
round vignette of many dermatoscopes (PH2 has it on most photos, HAM on some). White-balance
casts are not simulated: the Shades-of-Gray step of the preprocessing removes them, for
training and serving alike.

Everything here maps a PIL image to a PIL image (or uint8 array) with a ``random.Random``, so
a (seed, epoch, photo) triple always gives the same view, and a resumed run sees what an
uninterrupted one would have seen.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

#: Share of the photo's area a random crop keeps, and its aspect range.
CROP_AREA = (0.35, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)


def random_resized_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    for _ in range(10):
        area = rng.uniform(*CROP_AREA) * w * h
        aspect = float(np.exp(rng.uniform(np.log(CROP_ASPECT[0]), np.log(CROP_ASPECT[1]))))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return img.crop((x0, y0, x0 + cw, y0 + ch))
    return img


def random_orientation(img: Image.Image, rng: random.Random) -> Image.Image:
    """One of the eight flips/quarter turns, then a small rotation whose empty corners are cropped."""
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    turn = rng.randrange(4)
    if turn:
        img = img.transpose((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)[turn - 1])
    return rotate_inside(img, rng.uniform(-30, 30))


def rotate_inside(img: Image.Image, angle: float) -> Image.Image:
    """Rotate by ``angle`` degrees, then keep the centre that has no empty corners."""
    if abs(angle) <= 1:
        return img
    w, h = img.size
    rad = np.deg2rad(abs(angle))
    scale = 1.0 / (np.cos(rad) + np.sin(rad) * max(w / h, h / w))
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR)
    kw, kh = max(1, int(w * scale)), max(1, int(h * scale))
    return img.crop(((w - kw) // 2, (h - kh) // 2, (w - kw) // 2 + kw, (h - kh) // 2 + kh))


def random_photometry(img: Image.Image, rng: random.Random) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.5:
        gamma = rng.uniform(0.8, 1.25)
        img = img.point([int(round(255.0 * (i / 255.0) ** gamma)) for i in range(256)] * 3)
    return img


def random_blur(img: Image.Image, rng: random.Random, p: float = 0.3) -> Image.Image:
    if rng.random() < p:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 1.5) * max(img.size) / 224))
    return img


def random_jpeg(img: Image.Image, rng: random.Random, p: float = 0.3) -> Image.Image:
    """Re-compression artefacts of phone photos and messaging apps."""
    if rng.random() < p:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randint(35, 90))
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img


def random_vignette(pixels: np.ndarray, rng: random.Random, p: float = 0.2) -> np.ndarray:
    """A dark disc border like a dermatoscope's field of view."""
    if rng.random() >= p:
        return pixels
    h, w = pixels.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2 + rng.uniform(-0.1, 0.1) * h, w / 2 + rng.uniform(-0.1, 0.1) * w
    radius = rng.uniform(0.45, 0.75) * np.hypot(h, w) / 2
    soft = max(1.0, 0.04 * radius)
    inside = np.clip((radius - np.hypot(yy - cy, xx - cx)) / soft, 0.0, 1.0)[..., None]
    darkness = rng.uniform(0.0, 30.0)
    return (pixels * inside + darkness * (1.0 - inside)).astype(np.uint8)


def random_noise(pixels: np.ndarray, rng: random.Random, p: float = 0.3) -> np.ndarray:
    if rng.random() >= p:
        return pixels
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(2.0, 8.0), pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def strong_view(img: Image.Image, rng: random.Random, input_size) -> np.ndarray:
    """A random view of a photo as (h, w, 3) uint8 at ``input_size``: what ``prepare_batch``'s
    resize would give for the augmented photo (its normalisation, colour step included, follows)."""
    from .preprocessing import resize

    img = random_resized_crop(img, rng)
    img = random_orientation(img, rng)
    img = random_photometry(img, rng)
    img = random_blur(img, rng)
    img = random_jpeg(img, rng)
    pixels = resize(img, input_size)
    pixels = random_vignette(pixels, rng)
    return random_noise(pixels, rng)
