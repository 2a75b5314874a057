"""A tiny real training run end to end: features -> head -> calibration -> gate -> artifact,
loaded by ``ml.inference.Classifier``, scored by ``evaluate``, served by the predict CLI.
One training run (module fixture) shared by the tests below; it takes a few seconds."""

import json

import numpy as np
import pytest

from ml.artifact import ArtifactError, read_metadata
from ml.classes import ALL_LABELS, CLASS_LABELS
from ml.cli import main

from .conftest import spot_image, write_dermnet, write_ham


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_ham(root / "ham", lesions_per_class=8, photos_per_lesion=2)
    write_dermnet(root / "dermnet", per_class=8)
    out = root / "artifacts" / "tiny-v1"
    args = [
        "train", "--ham", str(root / "ham"), "--dermnet", str(root / "dermnet"),
        "--arch", "baseline_cnn", "--weights", "none", "--input-size", "32", "--views", "1",
        "--epochs", "25", "--hidden", "64", "--dropout", "0.1", "--lr", "3e-3",
        "--cache", str(root / "cache"), "--out", str(out), "--runs", str(root / "runs"), "--threads", "1",
    ]
    assert main(args) == 0
    return {"root": root, "out": out, "args": args}


def test_training_writes_a_complete_verified_artifact(trained):
    meta = read_metadata(trained["out"], verify=True)
    assert set(meta["files"]) == {"model.keras", "gate.npz"}
    assert [c["code"] for c in meta["classes"]] == list(CLASS_LABELS) + ["other"]
    assert meta["input_size"] == [32, 32] and meta["preprocessing"] == "unit"
    assert meta["temperature"] > 0 and 0.0 <= meta["thresholds"]["min_confidence"] <= 1.0
    assert meta["gate"]["method"] == "mahalanobis" and meta["gate"]["min_pixel_std"] > 0
    for split in ("val", "test"):
        m = meta["metrics"][split]
        assert 0.0 <= m["all"]["balanced_accuracy"] <= 1.0
        assert {"ece", "ece_uncalibrated", "top4_accuracy", "macro_auc"} <= set(m["all"])
        assert "ham7" in m and "per_source" in m
    # the tiny model learned the colour code (chance is 1/13 over 13 classes)
    assert meta["metrics"]["val"]["all"]["top1_accuracy"] > 0.3
    assert (trained["root"] / "runs" / "tiny-v1" / "training_curves.png").stat().st_size > 1000
    assert (trained["root"] / "runs" / "tiny-v1" / "confusion_test.png").stat().st_size > 1000


def test_rerun_reuses_the_feature_cache(trained, caplog):
    caplog.set_level("INFO")
    out2 = trained["root"] / "artifacts" / "tiny-v2"
    args = list(trained["args"])
    args[args.index("--out") + 1] = str(out2)
    args[args.index("--epochs") + 1] = "2"
    assert main(args) == 0
    assert "'images': 0" in caplog.text  # nothing extracted the second time


def test_classifier_loads_the_trained_artifact_and_ranks_every_class(trained):
    from ml.inference import Classifier

    clf = Classifier.load(trained["out"])
    assert clf.version == "tiny-v1" and clf.gate is not None
    results = clf.predict([spot_image("nv", 1), spot_image("acne", 2)])
    for r in results:
        assert r.status in ("ok", "uncertain", "rejected") and r.model_version == "tiny-v1"
        probs = [p.probability for p in r.predictions]
        assert [p.code for p in r.predictions] and sorted(probs, reverse=True) == probs
        assert {p.code for p in r.predictions} == set(ALL_LABELS)
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)


def test_tampered_artifact_is_refused(trained, tmp_path):
    import shutil

    from ml.inference import Classifier

    copy = tmp_path / "copy"
    shutil.copytree(trained["out"], copy)
    with open(copy / "gate.npz", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ArtifactError, match="sha256"):
        Classifier.load(copy)
    (copy / "gate.npz").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        Classifier.load(copy)


def test_predict_cli_prints_one_json_object_per_file(trained, tmp_path, capsys):
    good = tmp_path / "spot.jpg"
    spot_image("mel", 5).save(good)
    flat = tmp_path / "flat.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (128, 128, 128)).save(flat)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    files = [str(good), str(broken), str(flat)] * 3
    assert main(["predict", "--model", str(trained["out"]), "--batch-size", "2", *files]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(files)
    records = [json.loads(line) for line in lines]
    assert [r["file"] for r in records] == files
    for r in records:
        assert set(r) == {"file", "status", "reason", "model_version", "kind", "predictions"}
        assert r["kind"] is None  # the tiny model has no kind probe
        assert r["model_version"] == "tiny-v1"
        if r["file"] == str(broken):
            assert (r["status"], r["reason"], r["predictions"]) == ("rejected", "unreadable", [])
            continue
        assert len(r["predictions"]) == len(ALL_LABELS)
        for p in r["predictions"]:
            assert set(p) == {"code", "label", "probability"} and isinstance(p["probability"], float)
        if r["status"] == "ok":
            assert r["reason"] is None
    flat_records = [r for r in records if r["file"] == str(flat)]
    assert all((r["status"], r["reason"]) == ("rejected", "not_skin") for r in flat_records)


def test_evaluate_command_scores_the_artifact_from_image_files(trained, tmp_path):
    from ml.cli import build_parser, load_splits
    from ml.evaluation import run_evaluation

    root = trained["root"]
    args = build_parser().parse_args(["evaluate", "--ham", str(root / "ham"), "--dermnet", str(root / "dermnet")])
    report = run_evaluation(trained["out"], load_splits(args), split="test", out_dir=tmp_path)
    meta = read_metadata(trained["out"])
    # the exported model on the image files reproduces the numbers computed from the cache
    assert report["all"]["balanced_accuracy"] == pytest.approx(meta["metrics"]["test"]["all"]["balanced_accuracy"], abs=1e-3)
    assert "watermark_check" in report and report["watermark_check"]["dermnet_photos"] > 0
    assert (tmp_path / "report_test.json").is_file() and (tmp_path / "confusion_test.png").is_file()
    assert np.isfinite(report["ms_per_image_forward"])


def test_finetuning_after_a_cached_activation_is_exported(tmp_path):
    """extract --tap-only caches block4_out; train --tap-cache fine-tunes stages 5-7 on it, and
    the exported model (image in) carries the fine-tuned layers: evaluating it from the image
    files reproduces the metrics computed from the cache."""
    from ml.cli import build_parser, load_splits
    from ml.evaluation import run_evaluation

    write_ham(tmp_path / "ham", lesions_per_class=5, photos_per_lesion=1)
    data = ["--ham", str(tmp_path / "ham"), "--arch", "efficientnet_lite0", "--weights", "none",
            "--input-size", "32", "--views", "1", "--threads", "1"]
    tap_cache = tmp_path / "tap-cache"
    assert main(["extract", *data, "--tap-layer", "block4_out", "--tap-only", "--cache", str(tap_cache)]) == 0
    out = tmp_path / "ft-v1"
    assert main(["train", *data, "--cache", str(tmp_path / "cache"), "--tap-cache", str(tap_cache),
                 "--epochs", "2", "--finetune-epochs", "2", "--finetune-lr", "1e-2", "--finetune-patience", "2",
                 "--hidden", "16", "--out", str(out), "--runs", str(tmp_path / "runs")]) == 0
    meta = read_metadata(out)
    ft = meta["training"]["finetune"]
    assert ft["trained_from"] == "block4_out" and ft["epochs_run"] >= 1
    splits = load_splits(build_parser().parse_args(["evaluate", "--ham", str(tmp_path / "ham")]))
    report = run_evaluation(out, splits, split="val")
    assert report["all"]["balanced_accuracy"] == pytest.approx(meta["metrics"]["val"]["all"]["balanced_accuracy"], abs=1e-3)
    assert report["all"]["ece"] == pytest.approx(meta["metrics"]["val"]["all"]["ece"], abs=0.02)

    # --init-from goes on from that artifact: at learning rate 0 it must come out as the same model
    # (a head trained anew would not), and it names what it started from.
    again = tmp_path / "ft-v2"
    assert main(["train", *data, "--tap-cache", str(tap_cache), "--init-from", str(out), "--finetune-epochs", "1",
                 "--finetune-lr", "0", "--out", str(again), "--runs", str(tmp_path / "runs")]) == 0
    meta2 = read_metadata(again)
    assert meta2["training"]["finetune"]["init_from"] == {"version": "ft-v1", "sha256": meta["files"]["model.keras"]}
    for key in ("balanced_accuracy", "top1_accuracy", "ece"):
        assert meta2["metrics"]["val"]["all"][key] == pytest.approx(meta["metrics"]["val"]["all"][key], abs=1e-4), key
    assert meta2["temperature"] == pytest.approx(meta["temperature"], rel=1e-3)
    assert meta2["training"]["finetune"]["batchnorm"] == "frozen"
    assert np.array_equal(_top_bn_mean(again), _top_bn_mean(out))

    # --finetune-batchnorm: the BatchNorm statistics follow the training photos even at learning
    # rate 0, so the model scored after that epoch is another one (the best epoch is kept after it)
    adapted = tmp_path / "ft-bn"
    assert main(["train", *data, "--tap-cache", str(tap_cache), "--init-from", str(out), "--finetune-epochs", "1",
                 "--finetune-lr", "0", "--finetune-batchnorm", "--out", str(adapted), "--runs", str(tmp_path / "runs")]) == 0
    ft_bn, ft_frozen = read_metadata(adapted)["training"]["finetune"], meta2["training"]["finetune"]
    assert ft_bn["batchnorm"] == "trained"
    assert ft_bn["history"]["val_loss"][0] != pytest.approx(ft_frozen["history"]["val_loss"][0], abs=1e-6)
    with pytest.raises(SystemExit, match="--tap-cache"):
        main(["train", *data, "--init-from", str(out), "--out", str(tmp_path / "nope")])


def _top_bn_mean(artifact):
    """Moving mean of the backbone's last BatchNorm in an artifact's Keras file."""
    import keras

    serving = keras.saving.load_model(artifact / "model.keras", compile=False)
    backbone = next(layer for layer in serving.layers if isinstance(layer, keras.Model) and layer.name != "head")
    return keras.ops.convert_to_numpy(backbone.get_layer("top_bn").moving_mean)


def test_tflite_export_is_added_with_its_checksum_when_it_scores_the_same(trained, tmp_path):
    import shutil

    from ml.cli import build_parser, load_splits
    from ml.export import TFLITE_FILE, LiteModel, export_tflite
    from ml.inference import Classifier
    from ml.preprocessing import prepare_batch

    art = tmp_path / "tiny-v1"
    shutil.copytree(trained["out"], art)
    root = trained["root"]
    splits = load_splits(build_parser().parse_args(["evaluate", "--ham", str(root / "ham"), "--dermnet", str(root / "dermnet")]))
    result = export_tflite(art, splits["test"], max_drop=0.005)
    assert result["accepted"] and abs(result["balanced_accuracy_drop"]) <= 0.005
    meta = read_metadata(art, verify=True)
    assert TFLITE_FILE in meta["files"] and meta["tflite"]["file"] == TFLITE_FILE
    clf = Classifier.load(art)
    batch = prepare_batch([spot_image("nv", 3), spot_image("acne", 4)], clf.input_size, clf.preprocessing)
    keras_logits, keras_emb = clf.forward(batch)
    lite_logits, lite_emb = LiteModel(art / TFLITE_FILE, len(clf.classes), batch_size=4)(batch)
    np.testing.assert_allclose(lite_logits, keras_logits, atol=0.05)
    assert lite_emb.shape == keras_emb.shape

    # evaluate --runtime scores the engine asked for and says which one it scored
    from ml.evaluation import run_evaluation

    by_engine = {r: run_evaluation(art, splits, split="test", runtime=r) for r in ("keras", "litert")}
    assert by_engine["keras"]["engine"] == {"runtime": "keras", "file": "model.keras", "test_time_flips": 1,
                                           "test_time_crop": None}
    assert by_engine["litert"]["engine"] == {"runtime": "litert", "file": TFLITE_FILE, "test_time_flips": 1,
                                            "test_time_crop": None}
    assert by_engine["keras"]["all"]["balanced_accuracy"] == pytest.approx(
        meta["metrics"]["test"]["all"]["balanced_accuracy"], abs=1e-3)
