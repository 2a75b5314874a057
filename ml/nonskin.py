"""Pictures that are not skin photos, to measure the gate: scikit-image's bundled sample
images (no download), flat colours and noise."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: scikit-image samples that ship inside the package (the others need a download).
SKIMAGE_SAMPLES = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "page", "text", "checkerboard", "brick",
    "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "moon", "retina",
    "logo", "clock", "coins", "colorwheel", "binary_blobs", "shepp_logan_phantom", "cell",
    "microaneurysms", "stereo_motorcycle",
)

FLAT_COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (220, 30, 30),
    "green": (30, 180, 60), "blue": (30, 60, 200), "yellow": (240, 220, 40), "beige": (224, 190, 160),
    "brown": (120, 80, 50), "pink": (240, 170, 180),
}


def _to_pil(array) -> Image.Image:
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = a.astype(np.float64)
        a = (255 * (a - a.min()) / max(float(a.max() - a.min()), 1e-9)).astype(np.uint8)
    img = Image.fromarray(a)
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def skimage_samples() -> dict[str, Image.Image]:
    import skimage.data

    out = {}
    for name in SKIMAGE_SAMPLES:
        try:
            data = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - a sample missing from this scikit-image version
            continue
        if isinstance(data, tuple):
            data = data[0]
        out[f"skimage:{name}"] = _to_pil(data)
    return out


def synthetic_nonskin(size: int = 224, seed: int = 0) -> dict[str, Image.Image]:
    """Flat colours, uniform and Gaussian noise, stripes and a gradient."""
    rng = np.random.default_rng(seed)
    out = {f"flat:{name}": Image.new("RGB", (size, size), rgb) for name, rgb in FLAT_COLOURS.items()}
    for i in range(3):
        out[f"noise:uniform{i}"] = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        g = np.clip(rng.normal(128, 50, (size, size, 3)), 0, 255).astype(np.uint8)
        out[f"noise:gaussian{i}"] = Image.fromarray(g)
    stripes = np.zeros((size, size, 3), np.uint8)
    stripes[:, ::16] = 255
    stripes[:, 1::16] = 255
    out["pattern:stripes"] = Image.fromarray(stripes)
    ramp = np.tile(np.linspace(0, 255, size, dtype=np.uint8)[None, :, None], (size, 1, 3))
    out["pattern:gradient"] = Image.fromarray(ramp)
    return out


def nonskin_images(seed: int = 0) -> dict[str, Image.Image]:
    return {**skimage_samples(), **synthetic_nonskin(seed=seed)}
