"""The --arch builders, without downloading anything (weights=None or a local file)."""

import numpy as np
import pytest

from ml.architectures import ARCHITECTURES, build_backbone, build_head, build_serving_model


@pytest.mark.parametrize("arch,size", [("baseline_cnn", 32), ("mobilenet_v2", 32), ("densenet121", 32), ("efficientnet_lite0", 32)])
def test_backbones_build_from_scratch_and_embed(arch, size):
    bb = build_backbone(arch, (size, size), weights=None)
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    emb = np.asarray(bb.model(x, training=False))
    assert emb.ndim == 2 and emb.shape[0] == 2
    assert bb.preprocessing in ("efficientnet_lite", "mobilenet_v2", "densenet", "unit")
    assert bb.arch in ARCHITECTURES


def test_local_weights_file_round_trip(tmp_path):
    bb = build_backbone("baseline_cnn", (32, 32), weights=None)
    path = tmp_path / "baseline.weights.h5"
    bb.model.save_weights(path)
    again = build_backbone("baseline_cnn", (32, 32), weights=str(path))
    for a, b in zip(bb.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError):
        build_backbone("mobilenet_v2", (32, 32), weights=str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError):
        build_backbone("vgg", (32, 32), weights=None)


def test_a_keras_application_loads_its_weights_from_a_local_file_and_never_downloads(tmp_path):
    """DenseNet121 (the thesis model, still selectable): a local weights file is the offline
    stand-in for "imagenet", and asking for "imagenet" here reaches the download, which the
    ml tests refuse (conftest.no_keras_downloads)."""
    bb = build_backbone("densenet121", (32, 32), weights=None)
    path = tmp_path / "densenet121.weights.h5"
    bb.model.save_weights(path)
    again = build_backbone("densenet121", (32, 32), weights=str(path))
    np.testing.assert_array_equal(bb.model.get_weights()[0], again.model.get_weights()[0])
    with pytest.raises(RuntimeError, match="tried to download"):
        build_backbone("densenet121", (32, 32), weights="imagenet")


def test_serving_model_has_logits_and_embedding_outputs():
    bb = build_backbone("baseline_cnn", (32, 32), weights=None, width=4)
    head = build_head(bb.model.output_shape[-1], 13, hidden=8)
    model = build_serving_model(bb.model, head)
    logits, emb = model(np.zeros((3, 32, 32, 3), "float32"))
    assert logits.shape == (3, 13) and emb.shape == (3, 32)
    assert model.output_names == ["logits", "embedding"] if hasattr(model, "output_names") else True
