"""Occlusion heatmaps: the hot spot is where the model's answer comes from, mapped onto the photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.explain import occlusion_drops, occlusion_heatmap, overlay_png, patch_masks

SIZE = 32
# A region off the diagonal, so a transposed or flipped map cannot pass by accident.
ROWS, COLS = slice(4, 12), slice(20, 28)


def region_forward(region=(ROWS, COLS), gain=3.0, calls=None):
    """A fake model whose class-0 logit is the brightness of one region of the input."""

    def forward(batch):
        batch = np.asarray(batch)
        if calls is not None:
            calls.append(len(batch))
        brightness = batch[:, region[0], region[1], :].mean(axis=(1, 2, 3))  # 'unit' mode: 0..1
        logits = np.zeros((len(batch), 3))
        logits[:, 0] = gain * brightness
        return logits, None

    return forward


def spot_pixels(rows=ROWS, cols=COLS, size=(SIZE, SIZE)):
    """Dark skin-ish background with one bright square where the fake model looks."""
    pixels = np.full((size[0], size[1], 3), 40, dtype=np.uint8)
    pixels[rows, cols] = 230
    return pixels


def peak(heat):
    return np.unravel_index(int(np.argmax(heat)), heat.shape)


def test_peak_is_in_the_region_the_model_uses():
    heat = occlusion_heatmap(region_forward(), spot_pixels(), 0, input_size=(SIZE, SIZE), mode="unit", grid=8)
    row, col = peak(heat)
    assert ROWS.start <= row < ROWS.stop and COLS.start <= col < COLS.stop
    # Far from the region, hiding things costs nothing.
    assert heat[24:, :8].max() < 0.05


def test_a_region_the_model_ignores_stays_cold():
    """The bright square is elsewhere than the region the model reads: nothing there lights up."""
    pixels = spot_pixels() + 0
    pixels[20:28, 2:10] = 230  # a second, ignored spot
    heat = occlusion_heatmap(region_forward(), pixels, 0, input_size=(SIZE, SIZE), mode="unit", grid=8)
    assert heat[20:28, 2:10].max() < 0.1
    assert heat[ROWS, COLS].max() == pytest.approx(1.0, abs=0.02)


def test_heatmap_maps_back_onto_a_photo_of_another_shape():
    """The model sees the whole photo squeezed to its input (no crop), so the map is stretched back."""
    photo = np.full((60, 120, 3), 40, dtype=np.uint8)  # 120 wide, 60 high
    photo[8:22, 80:104] = 230  # top right
    region = (slice(int(8 / 60 * SIZE), int(22 / 60 * SIZE)), slice(int(80 / 120 * SIZE), int(104 / 120 * SIZE)))
    heat = occlusion_heatmap(region_forward(region), Image.fromarray(photo), 0, input_size=(SIZE, SIZE),
                             mode="unit", grid=8, size=(120, 60))
    assert heat.shape == (60, 120)
    row, col = peak(heat)
    assert 4 <= row < 26 and 76 <= col < 108


def test_shape_range_and_cost():
    calls = []
    heat = occlusion_heatmap(region_forward(calls=calls), spot_pixels(), 0, input_size=(SIZE, SIZE), mode="unit",
                             grid=5, batch_size=7)
    assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert sum(calls) == 5 * 5 + 1 and max(calls) <= 7


def test_a_classifier_with_test_time_flips_is_occluded_in_one_view():
    """The map is of the photo as taken: one engine pass per occluded copy, not four."""
    from types import SimpleNamespace

    from ml.tta import with_flips

    calls = []
    engine = region_forward(calls=calls)
    clf = SimpleNamespace(engine_forward=engine, forward=with_flips(engine, 4), input_size=(SIZE, SIZE),
                          preprocessing="unit", temperature=1.0)
    heat = occlusion_heatmap(clf, spot_pixels(), 0, grid=8, batch_size=17)
    assert sum(calls) == 8 * 8 + 1
    row, col = peak(heat)
    assert ROWS.start <= row < ROWS.stop and COLS.start <= col < COLS.stop


def test_nothing_matters_gives_an_empty_map():
    def constant(batch):
        return np.tile([[2.0, 0.0, -1.0]], (len(batch), 1)), None

    heat = occlusion_heatmap(constant, spot_pixels(), 0, input_size=(SIZE, SIZE), mode="unit")
    assert not heat.any()


def test_weak_evidence_stays_faint():
    """Drops smaller than the floor are not blown up to full heat."""
    weak = region_forward(gain=0.05)
    drops = occlusion_drops(weak, spot_pixels(), 0, input_size=(SIZE, SIZE), mode="unit", grid=8)
    assert 0 < drops.max() < 0.05
    heat = occlusion_heatmap(weak, spot_pixels(), 0, input_size=(SIZE, SIZE), mode="unit", grid=8, floor=0.05)
    # drops.max() / floor, give or take the interpolation's overshoot; never full heat.
    assert 0.5 * drops.max() / 0.05 < heat.max() < 1.5 * drops.max() / 0.05


def test_bare_forward_needs_input_size_and_mode():
    with pytest.raises(ValueError):
        occlusion_heatmap(region_forward(), spot_pixels(), 0)


def test_patch_masks_cover_the_image_with_soft_overlapping_patches():
    masks = patch_masks((SIZE, 48), grid=4, patch=2.0)
    assert masks.shape == (16, SIZE, 48)
    assert masks.min() >= 0 and masks.max() == pytest.approx(1.0)
    assert (masks.sum(axis=0) > 0.5).all()  # every pixel gets hidden by some patch
    assert ((masks > 0) & (masks < 1)).any()  # soft edges
    assert ((masks[0] > 0.5) & (masks[1] > 0.5)).any()  # neighbours overlap


def _decoded(png):
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGBA")


def test_overlay_has_the_photo_size_and_is_transparent_where_cold():
    photo = Image.new("RGB", (90, 50), (200, 150, 120))
    heat = np.zeros((SIZE, SIZE), np.float32)
    heat[4:12, 20:28] = 1.0
    overlay = _decoded(overlay_png(photo, heat))
    assert overlay.size == photo.size
    alpha = np.asarray(overlay)[..., 3]
    assert alpha[:, :20].max() == 0  # left part: cold, fully transparent
    assert alpha.max() > 100  # the hot spot shows
    hot = np.unravel_index(int(np.argmax(alpha)), alpha.shape)
    assert hot[0] < 25 and hot[1] > 55  # top right, stretched like the photo


def test_overlay_of_an_empty_map_is_fully_transparent():
    overlay = _decoded(overlay_png((64, 40), np.zeros((8, 8))))
    assert overlay.size == (64, 40)
    assert np.asarray(overlay)[..., 3].max() == 0


def test_overlay_rejects_a_non_2d_map():
    with pytest.raises(ValueError):
        overlay_png((10, 10), np.zeros((4, 4, 3)))


def test_with_the_tiny_real_model(tiny_model_dir):
    from ml.inference import Classifier

    classifier = Classifier.load(tiny_model_dir)
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    top = int(np.argmax(classifier.forward(np.zeros((1, SIZE, SIZE, 3), np.float32))[0]))
    heat = occlusion_heatmap(classifier, photo, top, grid=4, size=photo.size)
    assert heat.shape == (48, 64)
    assert np.isfinite(heat).all() and 0.0 <= heat.min() and heat.max() <= 1.0
    assert _decoded(overlay_png(photo, heat)).size == photo.size


def test_overlay_of_a_large_photo_can_be_capped_keeping_the_aspect_ratio():
    overlay = _decoded(overlay_png((4000, 3000), np.ones((8, 8)), max_side=1024))
    assert overlay.size == (1024, 768)
