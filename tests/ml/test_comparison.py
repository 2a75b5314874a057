"""The architecture comparison on a few generated photos: image cache, a one-epoch
baseline CNN run, evaluation with the project's metrics, the result record, and the
shipped-artifact row. No network, no ../shared/data."""

import json

import numpy as np
import pytest

from ml.classes import CLASS_LABELS
from ml.preprocessing import MODES, normalize

from .conftest import write_dermnet, write_ham


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("comparison")
    write_ham(root / "ham", lesions_per_class=4, photos_per_lesion=2)
    write_dermnet(root / "dermnet", per_class=4)
    return root


def _args(root, *extra):
    return [
        "--ham", str(root / "ham"), "--dermnet", str(root / "dermnet"),
        "--size", "32", "--max-epochs", "1", "--epoch-images", "64", "--batch-size", "16",
        "--cache", str(root / "cache"), "--runs", str(root / "runs"), "--out", str(root / "comparison.json"),
        "--threads", "1", "--latency-repeats", "2,1", *extra,
    ]


@pytest.fixture(scope="module")
def result(data):
    from ml.comparison import main

    assert main(_args(data, "--archs", "baseline_cnn", "--export", f"baseline_cnn={data / 'tiny-cmp-v1'}")) == 0
    return json.loads((data / "comparison.json").read_text())


def test_image_cache_holds_every_split_photo_once_as_uint8(data, result):
    from ml.cli import build_parser, load_splits

    splits = load_splits(build_parser().parse_args(["train", "--ham", str(data / "ham"), "--dermnet", str(data / "dermnet"), "--out", "x"]))
    for split in ("train", "val", "test"):
        arr = np.load(data / "cache" / "32px" / f"{split}.npy")
        assert arr.dtype == np.uint8 and arr.shape == (len(splits[split]), 32, 32, 3)
    assert result["split_sizes"] == {k: len(v) for k, v in splits.items()}


def test_cached_photo_normalised_equals_the_serving_batch(data, result):
    """Training from the cache sees what ``prepare_batch`` gives the serving model."""
    from ml.cli import build_parser, load_splits
    from ml.data import load_training_image
    from ml.preprocessing import prepare_batch

    splits = load_splits(build_parser().parse_args(["train", "--ham", str(data / "ham"), "--dermnet", str(data / "dermnet"), "--out", "x"]))
    arr = np.load(data / "cache" / "32px" / "val.npy")
    served = prepare_batch([load_training_image(s, (32, 32)) for s in splits["val"]], (32, 32), "unit")
    np.testing.assert_allclose(normalize(arr, "unit"), served, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_tf_normalize_matches_numpy(mode):
    from ml.comparison import tf_normalize

    x = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    np.testing.assert_allclose(np.asarray(tf_normalize(x.astype(np.float32), mode)), normalize(x, mode), atol=1e-5)


def test_result_record_schema(result):
    (r,) = result["results"]
    assert r["arch"] == "baseline_cnn" and r["weights"] == "from scratch"
    assert r["input_size"] == [32, 32] and r["preprocessing"] == "unit"
    assert r["classes"] == list(CLASS_LABELS) + ["other"]
    assert r["params"] > 0 and r["file_size_bytes"] > 10_000
    assert r["ms_per_image"]["batch1"] > 0 and r["ms_per_image"]["batch32"] > 0
    assert r["temperature"] > 0 and 0.0 <= r["min_confidence"] <= 1.0
    t = r["training"]
    assert t["epochs"] == 1 and t["best_epoch"] == 1 and t["stopped"] == "max_epochs"
    assert t["wall_s"] > 0 and t["images_seen"] == t["epoch_images"] == 48  # 40 training photos: 3 steps of 16 and len(t["history"]) == 1
    assert 0.0 <= t["history"][0]["val_balanced_accuracy"] <= 1.0
    for split in ("val", "test"):
        s = r[split]
        for key in ("balanced_accuracy", "top1_accuracy", "top4_accuracy", "macro_auc", "ece", "ece_uncalibrated"):
            assert key in s["all"]
        assert "ham7_lesion_level" in s and "mel_auc" in s["ham7_lesion_level"]
        assert "product12" in s and "abstention" in s
    assert "| baseline_cnn | from scratch | 32px |" in __import__("ml.comparison", fromlist=["table"]).table(result)


def test_exported_artifact_loads_in_the_classifier(data, result):
    from ml.inference import Classifier

    from .conftest import spot_image

    clf = Classifier.load(data / "tiny-cmp-v1")
    assert clf.version == "tiny-cmp-v1" and clf.input_size == (32, 32) and clf.gate is not None
    assert clf.metadata["architecture"] == "baseline_cnn" and clf.metadata["temperature"] == result["results"][0]["temperature"]
    (res,) = clf.predict([spot_image("mel", 3)])
    assert len(res.predictions) == 13 and res.status in ("ok", "uncertain", "rejected")
    assert result["results"][0]["artifact"]["nonskin_n"] > 0


def test_shipped_artifact_row_comes_from_its_metadata(data, tmp_path):
    """The EfficientNet-Lite0 row is read, not retrained: build a tiny artifact and read it back."""
    from ml.comparison import artifact_record, merge_results, table

    art = _tiny_artifact(tmp_path / "tiny-v9")
    r = artifact_record(art, latency_repeats=(2, 1))
    assert r["version"] == "tiny-v9" and r["params"] > 0 and r["ms_per_image"]["batch32"] > 0
    assert r["test"]["all"]["balanced_accuracy"] == 0.5
    data_ = merge_results(tmp_path / "c.json", {"command": "x"}, [r])
    assert "| baseline_cnn (tiny-v9) | None | 32px |" in table(data_)


def _tiny_artifact(out):
    import keras

    from ml.architectures import build_backbone, build_head, build_serving_model
    from ml.artifact import write_artifact

    out.mkdir(parents=True)
    bb = build_backbone("baseline_cnn", (32, 32), None, width=4)
    build_serving_model(bb.model, build_head(32, 13, hidden=0)).save(out / "model.keras")
    keras.backend.clear_session()
    m = {"all": {"balanced_accuracy": 0.5, "ece": 0.1, "top4_accuracy": 0.9}}
    return write_artifact(out, {
        "version": out.name, "architecture": "baseline_cnn", "backbone_weights": "None",
        "classes": [{"code": c} for c in list(CLASS_LABELS) + ["other"]], "input_size": [32, 32],
        "preprocessing": "unit", "metrics": {"val": m, "test": m}, "training": {"wall_times_s": {"total_s": 60}},
    }) and out


def test_latency_can_be_remeasured_without_training(data, result, tmp_path):
    import shutil

    from ml.comparison import main

    copy = tmp_path / "c.json"
    shutil.copy(data / "comparison.json", copy)
    assert main(_args(data, "--archs", "baseline_cnn", "--latency-only", "--out", str(copy))) == 0
    (r,) = json.loads(copy.read_text())["results"]
    assert r["ms_per_image"]["batch1"] > 0 and r["training"] == result["results"][0]["training"]


def test_densenet121_exports_a_servable_artifact(data, tmp_path):
    """The product owner's DenseNet121 goes through the same export, so ML_MODEL_NAME can select it."""
    from ml.comparison import main
    from ml.inference import Classifier

    from .conftest import spot_image

    out = tmp_path / "densenet121-tiny"
    args = _args(data, "--archs", "densenet121", "--export", f"densenet121={out}")
    args[args.index("--out") + 1] = str(tmp_path / "comparison.json")
    assert main(args) == 0
    clf = Classifier.load(out)
    assert clf.metadata["architecture"] == "densenet121" and clf.gate is not None
    (res,) = clf.predict([spot_image("nv", 1)])
    assert len(res.predictions) == 13 and res.embedding is not None and res.embedding.shape == (1024,)
