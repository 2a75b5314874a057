"""The serving engines: the choice rule, the ML_RUNTIME/ML_THREADS overrides, LiteRT against Keras
on a real (tiny) exported artifact, and a LiteRT worker that never imports TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.classes import CLASS_LABELS
from ml.runtime import RuntimeSelectionError, choose_serving, resolve_runtime, threads_from_env
from tests.ml.conftest import spot_image, write_dermnet, write_ham

ROOT = Path(__file__).resolve().parents[2]

KERAS = {"file": "model.keras", "balanced_accuracy": 0.540, "ms_per_image_b1": 10.0, "gate_false_rejection": 0.020}


def variant(acc, ms, fr=None, file=None):
    v = {"file": file or f"model_{ms}.tflite", "balanced_accuracy": acc, "ms_per_image_b1": ms}
    if fr is not None:
        v["gate_false_rejection"] = fr
    return v


@pytest.mark.parametrize(
    "variants, expected",
    [
        ({}, "keras"),  # nothing exported: Keras serves
        ({"fp32": variant(0.540, 6.0), "fp16": variant(0.539, 4.8), "int8": variant(0.537, 2.0)}, "int8"),
        # int8 is fastest but loses 0.6 point: the next fastest within half a point wins
        ({"fp32": variant(0.540, 6.0), "fp16": variant(0.539, 4.8), "int8": variant(0.534, 2.0)}, "fp16"),
        # exactly half a point lost is still accepted
        ({"int8": variant(0.535, 2.0)}, "int8"),
        # a variant that is *better* than Keras is fine too
        ({"int8": variant(0.560, 2.0)}, "int8"),
        # all exports too inaccurate: Keras
        ({"fp16": variant(0.530, 4.0), "int8": variant(0.500, 2.0)}, "keras"),
        # an export slower than Keras is never chosen
        ({"dynamic": variant(0.540, 12.0)}, "keras"),
        # the embedding feeds the not-skin gate: an export that rejects more skin photos is refused
        ({"fp16": variant(0.539, 4.8, fr=0.021), "int8": variant(0.539, 2.0, fr=0.040)}, "fp16"),
    ],
)
def test_choose_serving_takes_the_fastest_within_half_a_point(variants, expected):
    chosen = choose_serving(KERAS, variants, max_drop=0.005)
    assert chosen["variant"] == expected
    assert chosen["runtime"] == ("keras" if expected == "keras" else "litert")
    assert chosen["file"] == (KERAS["file"] if expected == "keras" else variants[expected]["file"])
    assert chosen["balanced_accuracy_drop"] <= 0.005 + 1e-12


def test_engines_tied_on_speed_go_to_the_smallest_file():
    variants = {"fp32": {**variant(0.5406, 9.6), "size_bytes": 16_000_000},
                "fp16": {**variant(0.5399, 9.9), "size_bytes": 8_000_000}}
    assert choose_serving(KERAS, variants)["variant"] == "fp16"  # 3 % slower: a tie
    variants["fp16"]["ms_per_image_b1"] = 10.5  # 9 % slower: fp32 is faster
    assert choose_serving(KERAS, variants)["variant"] == "fp32"
    assert choose_serving(KERAS, variants, tie=0.10)["variant"] == "fp16"
    # the tie never lets a less accurate engine in: fp16 out of bounds, fp32 stays
    variants["fp16"].update(balanced_accuracy=0.530, ms_per_image_b1=9.6)
    assert choose_serving(KERAS, variants)["variant"] == "fp32"


def test_choose_serving_can_rank_by_another_speed():
    variants = {"fp16": {**variant(0.54, 4.8), "ms_per_image_b32": 3.0}, "int8": {**variant(0.54, 2.0), "ms_per_image_b32": 4.0}}
    keras = {**KERAS, "ms_per_image_b32": 8.0}
    assert choose_serving(keras, variants, speed_key="ms_per_image_b32")["variant"] == "fp16"


META = {
    "model_file": "model.keras",
    "serving": {"runtime": "litert", "file": "model_int8.tflite"},
    "tflite": {"variants": {"fp16": {"file": "model_fp16.tflite", "kept": True, "ms_per_image_b1": 4.8},
                            "int8": {"file": "model_int8.tflite", "kept": True, "ms_per_image_b1": 2.0}}},
}


@pytest.mark.parametrize(
    "metadata, requested, expected",
    [
        (META, "auto", ("litert", "model_int8.tflite")),
        (META, None, ("litert", "model_int8.tflite")),
        (META, "keras", ("keras", "model.keras")),
        (META, " LiteRT ", ("litert", "model_int8.tflite")),
        ({"model_file": "model.keras"}, "auto", ("keras", "model.keras")),
        ({**META, "serving": {"runtime": "keras", "file": "model.keras"}}, "auto", ("keras", "model.keras")),
        # serving says keras but LiteRT is forced: the fastest export the artifact kept
        ({**META, "serving": {"runtime": "keras", "file": "model.keras"}}, "litert", ("litert", "model_int8.tflite")),
        # the first export's metadata layout (a single fp16 file)
        ({"model_file": "model.keras", "tflite": {"file": "model_fp16.tflite"}}, "litert", ("litert", "model_fp16.tflite")),
    ],
)
def test_resolve_runtime(metadata, requested, expected):
    assert resolve_runtime(metadata, requested) == expected


@pytest.mark.parametrize("metadata, requested", [(META, "onnx"), ({"model_file": "model.keras"}, "litert")])
def test_resolve_runtime_refuses_what_it_cannot_serve(metadata, requested):
    with pytest.raises(RuntimeSelectionError):
        resolve_runtime(metadata, requested)


def test_threads_come_from_the_argument_then_ml_threads_then_one(monkeypatch):
    monkeypatch.delenv("ML_THREADS", raising=False)
    assert threads_from_env() == 1
    monkeypatch.setenv("ML_THREADS", "2")
    assert threads_from_env() == 2
    assert threads_from_env(3) == 3


# --------------------------------------------------------------------------- a real exported artifact


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny artifact with fp32, fp16 and int8 LiteRT exports, scored on generated photos."""
    from ml.data import load_dermnet, load_ham, split_samples
    from ml.export import export_litert
    from tests.conftest import build_tiny_artifact

    root = tmp_path_factory.mktemp("export")
    art = root / "tiny-lite-1"
    build_tiny_artifact(art, version="tiny-lite-1")
    samples = load_ham(write_ham(root / "ham", lesions_per_class=6, photos_per_lesion=1))
    samples += load_dermnet(write_dermnet(root / "dermnet", per_class=6))
    splits = split_samples(samples, (0.5, 0.25, 0.25))
    result = export_litert(art, splits["test"], calibration_samples=splits["train"],
                           variants=("fp32", "fp16", "int8", "int8_float_head"),
                           keep=("fp32", "fp16", "int8", "int8_float_head"),
                           calibration_photos=20, timing_repeats=3)
    return {"dir": art, "result": result, "splits": splits}


def _batch(clf, n=6):
    from ml.preprocessing import prepare_batch

    codes = ["nv", "mel", "acne", "bcc", "ad", "vasc"]
    return prepare_batch([spot_image(codes[i % len(codes)], 50 + i) for i in range(n)], clf.input_size, clf.preprocessing)


def test_export_records_every_variant_and_the_choice_with_checksums(exported):
    from ml.artifact import read_metadata

    meta = read_metadata(exported["dir"], verify=True)
    section, serving = meta["tflite"], meta["serving"]
    assert set(section["variants"]) == {"fp32", "fp16", "int8", "int8_float_head"}
    for name, v in section["variants"].items():
        assert 0.0 <= v["balanced_accuracy"] <= 1.0 and v["ms_per_image_b1"] > 0 and v["ms_per_image_b32"] > 0
        assert v["outputs"] == {"logits": "output_0", "embedding": "output_1"}
        assert v["kept"] == (v["file"] in meta["files"]) == v["within_max_drop"]
    assert section["photos"] == len(exported["splits"]["test"])
    assert section["variants"]["int8"]["calibration"]["photos"] == 20
    # the engines were timed against each other: Keras too
    assert section["keras"]["ms_per_image_b1"] > 0 and section["keras"]["ms_per_image_b32"] > 0
    expected = choose_serving(section["keras"], section["variants"], section["max_drop"])
    assert (serving["runtime"], serving["file"]) == (expected["runtime"], expected["file"])
    if serving["runtime"] == "litert":
        assert serving["file"] in meta["files"]


def test_export_keeps_only_the_chosen_file_unless_asked(tmp_path, exported):
    from ml.export import VARIANT_FILES, export_litert

    art = tmp_path / "again"
    shutil.copytree(exported["dir"], art)
    out = export_litert(art, exported["splits"]["test"], variants=("fp32", "fp16"), timing_repeats=2)
    on_disk = {p.name for p in art.glob("*.tflite")}
    wanted = {out["serving"]["file"]} if out["serving"]["runtime"] == "litert" else set()
    assert on_disk == wanted
    assert VARIANT_FILES["int8"] not in on_disk  # an earlier export not tried again is not left behind


def test_litert_gives_the_keras_probabilities_and_embedding(exported):
    from ml.inference import Classifier, softmax
    from ml.runtime import LiteRTRuntime

    keras_clf = Classifier.load(exported["dir"], runtime="keras")
    batch = _batch(keras_clf)
    k_logits, k_emb = keras_clf.forward(batch)
    n = len(keras_clf.classes)
    for name, atol in (("fp32", 1e-4), ("fp16", 5e-3), ("int8", 0.05), ("int8_float_head", 0.05)):
        lite = LiteRTRuntime(exported["dir"] / f"model_{name}.tflite", n, threads=1)
        l_logits, l_emb = lite(batch)
        assert l_logits.shape == k_logits.shape and l_emb.shape == k_emb.shape
        np.testing.assert_allclose(softmax(l_logits), softmax(k_logits), atol=atol)
        np.testing.assert_allclose(l_emb, k_emb, atol=atol * max(1.0, float(np.abs(k_emb).max())))
    # and through the Classifier: same ranking of the classes, same probabilities within 0.05
    lite_clf = Classifier.load(exported["dir"], runtime="litert")
    assert lite_clf.runtime_name == "litert"
    imgs = [spot_image("mel", 7), spot_image("acne", 8)]
    for a, b in zip(keras_clf.predict(imgs), lite_clf.predict(imgs)):
        assert a.predictions[0].code == b.predictions[0].code
        pa = {p.code: p.probability for p in a.predictions}
        pb = {p.code: p.probability for p in b.predictions}
        assert max(abs(pa[c] - pb[c]) for c in pa) < 0.05
        assert a.embedding.shape == b.embedding.shape


def test_litert_batch_of_one_equals_the_same_photo_in_a_batch(exported):
    from ml.inference import Classifier

    clf = Classifier.load(exported["dir"], runtime="litert")
    batch = _batch(clf, 4)
    logits4, emb4 = clf.forward(batch)
    logits1, emb1 = clf.forward(batch[2:3])  # the interpreter is resized between calls
    np.testing.assert_allclose(logits1[0], logits4[2], atol=1e-5)
    np.testing.assert_allclose(emb1[0], emb4[2], atol=1e-5)


def test_ml_runtime_and_ml_threads_override_the_artifact(exported, monkeypatch):
    from ml.inference import Classifier

    monkeypatch.setenv("ML_RUNTIME", "keras")
    assert Classifier.load(exported["dir"]).runtime_name == "keras"
    monkeypatch.setenv("ML_RUNTIME", "litert")
    monkeypatch.setenv("ML_THREADS", "2")
    clf = Classifier.load(exported["dir"])
    assert clf.runtime_name == "litert" and clf.runtime.threads == 2
    assert Classifier.load(exported["dir"], runtime="keras").runtime_name == "keras"  # the argument wins
    monkeypatch.setenv("ML_RUNTIME", "onnx")
    with pytest.raises(RuntimeSelectionError):
        Classifier.load(exported["dir"])


def test_a_litert_worker_never_imports_tensorflow(exported):
    code = (
        "import sys, json\n"
        "from ml.inference import Classifier\n"
        "from tests.ml.conftest import spot_image\n"
        f"clf = Classifier.load({str(exported['dir'])!r})\n"
        "r = clf.predict([spot_image('nv', 1)])[0]\n"
        "print(json.dumps({'runtime': clf.runtime_name, 'status': r.status, 'n': len(r.predictions),\n"
        "  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))}))\n"
    )
    env = {**os.environ, "ML_RUNTIME": "litert", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"runtime": "litert", "status": "ok", "n": len(CLASS_LABELS), "heavy": []}


def test_keras_model_is_still_reachable_under_litert(exported):
    """Grad-CAM and evaluation need the Keras model; under LiteRT it loads on first use."""
    from ml.inference import Classifier

    clf = Classifier.load(exported["dir"], runtime="litert")
    assert clf._model is None
    assert clf.model.output_shape[0][-1] == len(clf.classes)
