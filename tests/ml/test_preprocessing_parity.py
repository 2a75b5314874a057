"""Training and serving must build the same tensor from the same photo."""

import numpy as np
import pytest

from ml.data import load_ham, load_training_image
from ml.features import training_batch
from ml.preprocessing import open_image, prepare_batch


def test_training_batch_equals_serving_batch_for_a_clean_photo(ham_dir):
    samples = load_ham(ham_dir)[:5]
    size = (48, 48)
    for mode in ("efficientnet_lite", "mobilenet_v2", "densenet", "unit"):
        train = training_batch(samples, view=0, seed=0, input_size=size, mode=mode)
        serve = prepare_batch([open_image(s.path, size) for s in samples], size, mode)
        assert train.dtype == np.float32 and train.shape == (5, 48, 48, 3)
        np.testing.assert_array_equal(train, serve)


def test_dermnet_training_batch_is_the_serving_batch_of_the_cropped_photo(dermnet_dir):
    from ml.data import load_dermnet

    samples = load_dermnet(dermnet_dir)[:3]
    size = (32, 32)
    train = training_batch(samples, 0, 0, size, "efficientnet_lite")
    serve = prepare_batch([load_training_image(s, size) for s in samples], size, "efficientnet_lite")
    np.testing.assert_array_equal(train, serve)
    uncropped = prepare_batch([open_image(s.path, size) for s in samples], size, "efficientnet_lite")
    assert not np.array_equal(train, uncropped)


def test_classifier_feeds_the_model_the_prepare_batch_tensor(tiny_model_dir, ham_dir):
    from ml.inference import Classifier

    clf = Classifier.load(tiny_model_dir)
    seen = []
    original = clf._forward

    def spy(batch):
        seen.append(np.array(batch))
        return original(batch)

    clf._forward = spy
    sample = load_ham(ham_dir)[0]
    clf.predict([open_image(sample.path, clf.input_size)])
    expected = training_batch([sample], 0, 0, clf.input_size, clf.preprocessing)
    np.testing.assert_array_equal(seen[0], expected)


def test_a_large_jpeg_is_decoded_at_reduced_scale_and_prepares_nearly_the_same_tensor():
    """Draft mode (JPEG decoded at 1/2, 1/4 or 1/8 scale, never below the input size) is what makes a
    12-MP upload cheap; the tensor it leads to stays close to the one from a full decode."""
    import io

    from PIL import Image

    from tests.ml.conftest import spot_image

    buf = io.BytesIO()
    spot_image("mel", 3, size=(120, 90)).resize((1600, 1200), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=92)
    size = (224, 224)
    drafted = open_image(io.BytesIO(buf.getvalue()), size)
    full = open_image(io.BytesIO(buf.getvalue()))
    assert drafted.size == (400, 300) and full.size == (1600, 1200)  # 1/4: 1/8 would be under 224 px
    a, b = (prepare_batch([img], size, "unit") for img in (drafted, full))
    assert a.shape == b.shape == (1, 224, 224, 3)
    assert np.abs(a - b).mean() < 0.01  # under 1 % of the range on average
    # a small photo (all of the training data) is decoded exactly as before
    small = io.BytesIO()
    spot_image("nv", 4, size=(200, 150)).save(small, "JPEG", quality=92)
    assert open_image(io.BytesIO(small.getvalue()), size).size == (200, 150)


# --------------------------------------------------------------------------- colour constancy

def _cast(img, gains):
    from PIL import Image

    arr = np.asarray(img, dtype=np.float32) * np.asarray(gains, dtype=np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_shades_of_gray_removes_a_colour_cast():
    """The same spot under a warm and a cold light: far apart as they are, close once normalised."""
    from tests.ml.conftest import spot_image

    from ml.preprocessing import resize, shades_of_gray

    photo = spot_image("nv", 5, size=(64, 48))
    warm, cold = (resize(_cast(photo, g), (48, 48)) for g in ((1.15, 1.0, 0.8), (0.85, 0.95, 1.2)))
    before = np.abs(warm.astype(np.float32) - cold).mean()
    after = np.abs(shades_of_gray(warm) - shades_of_gray(cold)).mean()
    assert before > 20 and after < before / 4
    # grey stays grey, and a batch is normalised photo by photo
    grey = np.full((2, 8, 8, 3), 100, np.float32)
    grey[1] = 50
    np.testing.assert_allclose(shades_of_gray(grey), grey, atol=1e-3)


def test_colour_step_is_part_of_the_one_pipeline_string():
    from ml.preprocessing import normalize, shades_of_gray, split_mode, with_colour_constancy

    assert split_mode("efficientnet_lite+sog6") == ("efficientnet_lite", ("sog6",))
    assert with_colour_constancy("efficientnet_lite", "sog6") == "efficientnet_lite+sog6"
    assert with_colour_constancy("efficientnet_lite", "none") == "efficientnet_lite"
    for bad in ("efficientnet_lite+sog7", "nonsense"):
        with pytest.raises(ValueError):
            split_mode(bad)
    pixels = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3)).astype(np.uint8)
    np.testing.assert_array_equal(normalize(pixels, "unit+sog6"), normalize(shades_of_gray(pixels), "unit"))
    assert not np.array_equal(normalize(pixels, "unit+sog6"), normalize(pixels, "unit"))


def test_whole_network_training_views_go_through_the_serving_normalisation(ham_dir, monkeypatch):
    """With the augmentation made the identity, a training batch of the whole-network recipe is
    the tensor the worker builds from the same photos: colour constancy included."""
    from ml import whole_network
    from ml.preprocessing import resize
    from ml.whole_network import Recipe, decode_photos, view_batch

    samples = load_ham(ham_dir)[:4]
    recipe = Recipe(input_size=40, preprocessing="efficientnet_lite+sog6")
    photos = decode_photos(samples, 40)
    monkeypatch.setattr(whole_network, "strong_view", lambda img, rng, size: resize(img, size))
    train = view_batch(photos, recipe, epoch=1, start=0)
    serve = prepare_batch([open_image(s.path, (40, 40)) for s in samples], (40, 40), "efficientnet_lite+sog6")
    np.testing.assert_array_equal(train, serve)


def test_classifier_of_a_colour_constant_model_normalises_the_upload(tiny_model_dir, ham_dir, tmp_path):
    """An artifact whose metadata names ``+sog6`` gets it applied by the worker's Classifier."""
    import json
    import shutil

    from ml.artifact import write_artifact
    from ml.inference import Classifier

    copy = tmp_path / "sog"
    shutil.copytree(tiny_model_dir, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["preprocessing"] = meta["preprocessing"] + "+sog6"
    write_artifact(copy, meta)
    clf = Classifier.load(copy)
    seen = []
    original = clf._forward
    clf._forward = lambda batch: seen.append(np.array(batch)) or original(batch)
    sample = load_ham(ham_dir)[0]
    clf.predict([open_image(sample.path, clf.input_size)])
    np.testing.assert_array_equal(seen[0], training_batch([sample], 0, 0, clf.input_size, clf.preprocessing))
    plain = training_batch([sample], 0, 0, clf.input_size, meta["preprocessing"].split("+")[0])
    assert not np.array_equal(seen[0], plain)
