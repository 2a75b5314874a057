"""Test-time flips: the views, the averaging, the served classifier and the choice on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.tta import flip_views, views_of, with_flips


def _batch(n=3, size=5):
    return np.random.default_rng(0).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_flip_views_stack_the_mirrors_in_order():
    b = _batch()
    v = flip_views(b, 4)
    assert v.shape == (12, 5, 5, 3)
    np.testing.assert_array_equal(v[:3], b)
    np.testing.assert_array_equal(v[3:6], b[:, :, ::-1])
    np.testing.assert_array_equal(v[6:9], b[:, ::-1])
    np.testing.assert_array_equal(v[9:], b[:, ::-1, ::-1])
    np.testing.assert_array_equal(flip_views(b, 2), v[:6])
    with pytest.raises(ValueError):
        flip_views(b, 3)


def test_with_flips_averages_logits_in_one_call_and_keeps_the_photos_embedding():
    calls = []

    def forward(x):  # logits that see orientation: the mean of the left and the right half
        calls.append(len(x))
        left, right = x[:, :, :2].mean(axis=(1, 2, 3)), x[:, :, -2:].mean(axis=(1, 2, 3))
        return np.stack([left, right], axis=1), x.mean(axis=(1, 2))

    b = _batch()
    logits, embedding = with_flips(forward, 2)(b)
    assert calls == [6]
    one, emb_one = forward(b)
    mirrored, _ = forward(b[:, :, ::-1])
    np.testing.assert_allclose(logits, (one + mirrored) / 2, rtol=1e-6)
    np.testing.assert_array_equal(embedding, emb_one)
    assert with_flips(forward, 1) is forward


def test_views_of_reads_the_metadata():
    assert views_of({}) == 1
    assert views_of({"test_time_flips": 4}) == 4
    with pytest.raises(ValueError):
        views_of({"test_time_flips": 8})


def _with_flips(model_dir, views):
    from ml.artifact import read_metadata, write_artifact

    meta = read_metadata(model_dir, verify=False)
    meta.pop("files", None)
    meta["test_time_flips"] = views
    write_artifact(model_dir, meta)


def test_classifier_serves_the_recorded_views(tmp_path):
    from ml.inference import Classifier, softmax
    from ml.preprocessing import prepare_batch
    from tests.conftest import build_tiny_artifact
    from tests.ml.conftest import spot_image

    art = tmp_path / "tiny-flips"
    build_tiny_artifact(art, version="tiny-flips")
    images = [spot_image("mel", seed) for seed in range(3)]
    plain = Classifier.load(art, runtime="keras")
    batch = prepare_batch(images, plain.input_size, plain.preprocessing)
    views = [plain.engine_forward(np.ascontiguousarray(v))[0]
             for v in (batch, batch[:, :, ::-1], batch[:, ::-1], batch[:, ::-1, ::-1])]

    _with_flips(art, 4)
    flipped = Classifier.load(art, runtime="keras")
    assert flipped.test_time_flips == 4 and flipped.engine_key == "model-flips4" and plain.engine_key == "model"
    logits, embedding = flipped.forward(batch)
    np.testing.assert_allclose(logits, np.mean(views, axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embedding, plain.forward(batch)[1], rtol=1e-5)
    probs = [r.predictions[0].probability for r in flipped.predict(images)]
    np.testing.assert_allclose(probs, softmax(logits, flipped.temperature).max(axis=1), atol=1e-5)


def test_choose_flips_refits_and_records_its_choice(tmp_path):
    from ml.artifact import read_metadata
    from ml.data import load_dermnet, load_ham
    from ml.inference import Classifier
    from ml.tta import choose_flips
    from tests.conftest import build_tiny_artifact
    from tests.ml.conftest import write_dermnet, write_ham

    art = tmp_path / "tiny-choose"
    build_tiny_artifact(art, version="tiny-choose")
    meta = json.loads((art / "metadata.json").read_text())
    meta["thresholds"]["malignancy"] = 0.3
    (art / "metadata.json").write_text(json.dumps(meta))
    val = load_ham(write_ham(tmp_path / "ham", lesions_per_class=2, photos_per_lesion=1)) + \
        load_dermnet(write_dermnet(tmp_path / "dermnet", per_class=2))

    # a gain no model can reach keeps one view, but the measurements are all there
    report = choose_flips(art, val, min_gain=2.0, write=True)
    assert report["chosen"] == "1" and set(report["by_views"]) == {"1", "2", "4"}
    for r in report["by_views"].values():
        assert 0.0 <= r["balanced_accuracy"] <= 1.0 and r["temperature"] > 0
    meta = read_metadata(art, verify=True)  # checksums still hold
    assert meta["test_time_flips"] == 1 and "malignancy" not in meta["thresholds"]
    assert meta["temperature"] == report["by_views"]["1"]["temperature"]
    assert meta["thresholds"]["min_confidence"] == report["by_views"]["1"]["min_confidence"]
    assert "thresholds --write" in report["note"]

    # no gain asked: the most accurate count is served, and the classifier uses it
    report = choose_flips(art, val, choices=(1, 2), min_gain=-1.0, write=True)
    best = max((1, 2), key=lambda v: report["by_views"][str(v)]["balanced_accuracy"])
    assert report["chosen"] == str(best) and Classifier.load(art, runtime="keras").test_time_flips == best
    with pytest.raises(ValueError):
        choose_flips(art, val, choices=(2, 4))

    # a centre crop is one more view: within two passes, 1 + crop is measured and 2 + crop is not
    report = choose_flips(art, val, choices=(1, 2), crops=(0.6,), max_passes=2, min_gain=-1.0, write=True)
    assert set(report["by_views"]) == {"1", "2", "1+crop0.6"}
    assert report["by_views"]["1+crop0.6"]["passes"] == 2 and "by_kind" in report["by_views"]["1"]
    best = max(report["by_views"], key=lambda k: report["by_views"][k]["balanced_accuracy"])
    served = Classifier.load(art, runtime="keras")
    assert report["chosen"] == best
    assert served.test_time_crop == (0.6 if best == "1+crop0.6" else None)
    assert served.engine_key.endswith("-crop0.6") == (best == "1+crop0.6")
    with pytest.raises(ValueError):
        choose_flips(art, val, crops=(1.5,))


def test_centre_crop_scales_the_middle_back_to_full_size():
    from PIL import Image

    from ml.tta import centre_crop

    # a linear ramp stays linear under bilinear scaling: the crop of the middle half spans half the values
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    batch = np.stack([ramp, ramp.T, np.ones_like(ramp)], axis=-1)[None]
    out = centre_crop(batch, 0.5)
    assert out.shape == batch.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 32, :, 0], np.linspace(0.25, 0.75, 64), atol=0.01)
    np.testing.assert_allclose(out[0, :, 32, 1], np.linspace(0.25, 0.75, 64), atol=0.01)
    # agrees with PIL's resize of the cropped region on a real-looking image
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).resize((96, 96), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    pil = np.asarray(img.crop((24, 24, 72, 72)).resize((96, 96), Image.Resampling.BILINEAR), dtype=np.float32)
    ours = centre_crop(np.repeat(arr[None, :, :, None], 3, axis=3), 0.5)[0, :, :, 0]
    assert np.abs(ours - pil).mean() < 1.5
    np.testing.assert_array_equal(centre_crop(batch, 1.0), batch)
    with pytest.raises(ValueError):
        centre_crop(batch, 0.0)


def test_with_flips_adds_the_crop_as_one_more_view():
    from ml.tta import centre_crop, passes_of

    def forward(x):
        return x.mean(axis=(1, 2)), x.reshape(len(x), -1)

    b = _batch(2, 8)
    logits, embedding = with_flips(forward, 2, 0.5)(b)
    expected = (forward(b)[0] + forward(b[:, :, ::-1])[0] + forward(centre_crop(b, 0.5))[0]) / 3
    np.testing.assert_allclose(logits, expected, rtol=1e-5)
    np.testing.assert_array_equal(embedding, forward(b)[1])
    assert passes_of({"test_time_flips": 2, "test_time_crop": 0.5}) == 3 and passes_of({}) == 1


def test_export_scores_and_times_every_engine_with_the_served_views(tmp_path):
    from ml.data import load_dermnet, load_ham, split_samples
    from ml.export import export_litert
    from tests.conftest import build_tiny_artifact
    from tests.ml.conftest import write_dermnet, write_ham

    art = tmp_path / "tiny-export-flips"
    build_tiny_artifact(art, version="tiny-export-flips")
    _with_flips(art, 2)
    samples = load_ham(write_ham(tmp_path / "ham", lesions_per_class=4, photos_per_lesion=1)) + \
        load_dermnet(write_dermnet(tmp_path / "dermnet", per_class=4))
    splits = split_samples(samples, (0.5, 0.25, 0.25))
    section = export_litert(art, splits["test"], calibration_samples=splits["train"], variants=("fp32",),
                            timing_repeats=2)["tflite"]
    assert section["test_time_flips"] == 2 and "2 view(s)" in section["timing"]
    fp32 = section["variants"]["fp32"]
    # the same network with the same views: the float export agrees with Keras photo for photo
    assert fp32["top1_agreement_with_keras"] == 1.0
    assert fp32["balanced_accuracy"] == pytest.approx(section["keras"]["balanced_accuracy"])
