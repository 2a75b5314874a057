"""Where did the model look? Occlusion-sensitivity heatmaps for one class, and a PNG overlay.

Occlusion sensitivity (Zeiler & Fergus, 2014) needs nothing from the model but its forward
pass, so it works the same for the Keras model and for a LiteRT (TFLite) one, which has no
gradients: hide one part of the photo at a time, run the occluded copies through the model in
batches, and record how much the probability of the class in question falls. Parts whose hiding
costs the most probability are the parts the answer depended on.

Choices, and why:

* The hidden part is replaced by a heavily blurred copy of the photo, not a grey square: a grey
  square is a shape the model never saw in training and can change the answer by itself; the blur
  removes the detail (the lesion's border, its pattern) while keeping the local skin colour.
* Patches have soft edges and overlap (each is 2.5 grid cells wide by default), so no hard edge
  is added; the map is the drop of each patch at its centre, interpolated smoothly in between,
  so it has no block artefacts.
* Occlusion works on the model's input (the whole photo squeezed to the input size, no crop: see
  ``preprocessing.resize``), so stretching the map back to the photo's size puts it in place.

The map is normalised to [0, 1] by its own maximum (with a floor, see ``occlusion_heatmap``): it
says where the model looked *relative to the rest of this photo*, not how sure it is (that is the
probability itself), and not why. A hot spot on a ruler, a hair or a watermark is worth knowing:
it means the answer leans on something other than the skin.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

from .inference import softmax
from .preprocessing import normalize, resize

# A blue → cyan → yellow → red ramp (jet-like). Low values are transparent anyway, so what shows
# is mostly yellow to red, which reads as "hot" on any skin tone.
_RAMP = (
    (0.00, (40, 60, 255)),
    (0.35, (0, 220, 255)),
    (0.60, (255, 235, 0)),
    (1.00, (230, 0, 0)),
)


def occlusion_heatmap(
    model,
    image: Image.Image | np.ndarray,
    class_index: int,
    *,
    floor: float = 0.05,
    size: tuple[int, int] | None = None,
    **options,
) -> np.ndarray:
    """Heatmap (float32, values in [0, 1]) of how much hiding each area lowers ``class_index``.

    The probability drops of ``occlusion_drops`` (``options`` go to it), divided by the largest
    drop, but by at least ``floor``: when hiding any one part changes the answer by less than
    that (the model looked at the whole photo, or at nothing in particular), the map stays faint
    instead of blowing noise up to full heat. Interpolated smoothly from the patch centres to
    the input size, or to ``size`` = (width, height). All zeros if no patch lowers the probability.
    """
    drops = occlusion_drops(model, image, class_index, **options)
    peak = float(drops.max())
    cells = drops / max(peak, floor, 1e-6) if peak > 1e-6 else np.zeros_like(drops)
    if size is None:
        input_size = options.get("input_size") or model.input_size
        size = (int(input_size[1]), int(input_size[0]))
    return resize_heatmap(cells, size)


def occlusion_drops(
    model,
    image: Image.Image | np.ndarray,
    class_index: int,
    *,
    grid: int = 7,
    patch: float = 2.5,
    blur: float = 0.1,
    batch_size: int = 16,
    input_size: Sequence[int] | None = None,
    mode: str | None = None,
    temperature: float | None = None,
) -> np.ndarray:
    """How much the probability of ``class_index`` falls (``grid`` × ``grid``, >= 0) when the
    patch centred on each grid cell is hidden.

    ``model`` is an ``ml.inference.Classifier`` (its input size, preprocessing mode and
    temperature are used) or a bare ``forward(batch) -> (logits, embedding)``, in which case
    ``input_size`` (h, w) and ``mode`` must be given. ``image`` is a decoded photo, or a uint8
    (H, W, 3) array. ``patch`` is a patch's width in grid cells (above 1, patches overlap);
    ``blur`` the blur radius of the filler as a fraction of the input side. Costs
    ``grid``² + 1 forward passes, ``batch_size`` at a time. A classifier served with test-time
    flips is occluded in the photo's own orientation only (``engine_forward``): the map shows
    where that view is looked at, for a quarter of the cost of occluding every mirrored view.
    """
    forward = getattr(model, "engine_forward", None) or getattr(model, "forward", model)
    input_size = tuple(input_size or getattr(model, "input_size", ()) or ()) or None
    mode = mode or getattr(model, "preprocessing", None)
    if input_size is None or mode is None:
        raise ValueError("a bare forward function needs input_size and mode")
    if temperature is None:
        temperature = float(getattr(model, "temperature", 1.0) or 1.0)
    if grid < 2:
        raise ValueError("grid must be at least 2")

    pixels = _input_pixels(image, input_size)
    h, w = pixels.shape[:2]
    filler = np.asarray(
        Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(radius=max(1.0, blur * max(h, w)))),
        dtype=np.float32,
    )
    masks = patch_masks((h, w), grid, patch)
    base = pixels.astype(np.float32)

    probabilities = []
    # Row 0 is the photo itself; then one row per occluded copy.
    occlusions = np.concatenate([np.zeros((1, h, w), np.float32), masks])
    for start in range(0, len(occlusions), batch_size):
        m = occlusions[start:start + batch_size, :, :, None]
        batch = base[None] * (1.0 - m) + filler[None] * m
        logits, _ = forward(normalize(np.rint(batch), mode))
        probabilities.append(softmax(logits, temperature)[:, class_index])
    probabilities = np.concatenate(probabilities)
    return np.clip(probabilities[0] - probabilities[1:], 0.0, None).reshape(grid, grid).astype(np.float32)


def patch_masks(shape: Sequence[int], grid: int, patch: float = 2.0) -> np.ndarray:
    """``grid``² soft square masks (K, H, W) in [0, 1], one centred on each grid cell, ``patch``
    cells wide at half strength with a cosine fade half a cell wide (so patches wider than one
    cell overlap their neighbours, and no edge is sharp)."""
    h, w = int(shape[0]), int(shape[1])
    core = max(patch / 2.0 - 0.25, 0.0)  # half-width of the fully hidden part, in cells

    def profile(n: int) -> np.ndarray:
        step = n / grid
        centres = (np.arange(grid) + 0.5) * step
        t = np.abs(np.arange(n)[None, :] + 0.5 - centres[:, None]) / step  # distance in cells
        fade = 0.5 * (1.0 + np.cos(np.pi * np.clip((t - core) / 0.5, 0.0, 1.0)))
        return fade.astype(np.float32)  # (grid, n)

    rows, cols = profile(h), profile(w)
    return (rows[:, None, :, None] * cols[None, :, None, :]).reshape(grid * grid, h, w)


def resize_heatmap(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Stretch a map to ``size`` = (width, height) with bicubic interpolation, kept in [0, 1]."""
    resized = Image.fromarray(np.asarray(heat, dtype=np.float32), "F").resize(
        (int(size[0]), int(size[1])), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def overlay_png(
    photo: Image.Image | tuple[int, int],
    heatmap: np.ndarray,
    *,
    threshold: float = 0.25,
    max_alpha: float = 0.6,
    levels: int = 64,
    max_side: int | None = None,
) -> bytes:
    """A PNG the size of ``photo`` (an image, or its (width, height)): the heatmap in colour,
    fully transparent below ``threshold`` and up to ``max_alpha`` opaque at the peak.

    With ``max_side``, a larger photo gets an overlay scaled down to fit it, with the same
    aspect ratio (a page stretches it back over the photo): the map is a few dozen values
    interpolated, so more pixels add bytes, not detail. A palette PNG with per-colour
    transparency: the map is smooth, so 64 levels look the same as full RGBA at a fraction
    of the size.
    """
    width, height = photo.size if isinstance(photo, Image.Image) else (int(photo[0]), int(photo[1]))
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError("heatmap must be 2-D")
    if heat.shape != (height, width):
        heat = resize_heatmap(heat, (width, height))
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)

    index = np.minimum((heat * levels).astype(np.uint8), levels - 1)
    centres = (np.arange(levels) + 0.5) / levels
    colours = _colour_ramp(centres)
    alpha = np.clip((centres - threshold) / max(1.0 - threshold, 1e-6), 0.0, 1.0) * max_alpha
    alpha = np.where(centres < threshold, 0.0, np.maximum(alpha, 0.04))  # visible at all once past the threshold
    image = Image.fromarray(index, "P")
    image.putpalette(colours.astype(np.uint8).ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=bytes(np.rint(alpha * 255).astype(np.uint8)))
    return buffer.getvalue()


def _colour_ramp(values: np.ndarray) -> np.ndarray:
    stops = np.array([s for s, _ in _RAMP])
    rgb = np.array([c for _, c in _RAMP], dtype=np.float32)
    return np.stack([np.interp(values, stops, rgb[:, k]) for k in range(3)], axis=-1).round()


def _input_pixels(image: Image.Image | np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """The photo as the model sees it (uint8, before normalisation): occlusion happens here."""
    if isinstance(image, Image.Image):
        return resize(image, input_size)
    pixels = np.asarray(image)
    if pixels.shape[:2] != (int(input_size[0]), int(input_size[1])):
        pixels = resize(Image.fromarray(pixels.astype(np.uint8)), input_size)
    return pixels.astype(np.uint8)

