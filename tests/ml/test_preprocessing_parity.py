"""Training and serving must build the same tensor from the same photo."""

import numpy as np

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
