"""LiteRT (TFLite) exports of an artifact's Keras model, and the choice of the serving engine.

Variants: ``fp32`` (plain conversion), ``fp16`` (float16 weights), ``dynamic`` (int8 weights, float
activations), ``int8`` (full-integer weights and activations, calibrated on real skin photos from
the *training* split through the shared preprocessing; float input and outputs, so the serving code
does not change) and ``int8_float_head`` (the same with the small classifier head left in float). Each is scored on the held-out photos with the same metric as the Keras model
(balanced accuracy on the model's classes, ``evaluation.evaluate_probabilities``), plus what the
embedding output feeds: the not-skin gate's decisions and the embedding's cosine similarity to the
Keras one. :func:`ml.runtime.choose_serving` then picks the fastest engine, at batch 1 on one thread
(how a worker serves), that loses at most ``max_drop`` (0.5 point) of balanced accuracy. The
artifact keeps the chosen file (plus any named in ``keep`` that are close enough); all numbers go to ``metadata.json``
(``tflite`` and ``serving``), re-read just before writing so that other keys edited meanwhile stay.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .artifact import read_metadata, write_artifact
from .runtime import MAX_DROP, LiteRTRuntime, choose_serving
from .tta import with_flips

log = logging.getLogger(__name__)

VARIANT_FILES = {
    "fp32": "model_fp32.tflite",
    "fp16": "model_fp16.tflite",
    "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite",
    "int8_float_head": "model_int8_float_head.tflite",
}
VARIANTS = tuple(VARIANT_FILES)
TFLITE_FILE = VARIANT_FILES["fp16"]  # the first export, kept for older callers
CALIBRATION_PHOTOS = 300
#: ops of the classifier head; EfficientNet-Lite's backbone has none of them (convolutions, ReLU6, residual
#: ADDs, pooling), so it stays fully int8
FLOAT_HEAD_OPS = ("FULLY_CONNECTED", "SUB", "MUL", "DIV")


# --------------------------------------------------------------------------- conversion


def convert(model_path: Path, variant: str, representative: Sequence[np.ndarray] | None = None) -> bytes:
    """Convert the Keras model at ``model_path`` to one LiteRT variant (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    if variant not in VARIANT_FILES:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    model = keras.saving.load_model(model_path, compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 needs representative photos to calibrate the activations")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif variant == "int8_float_head":
        # the backbone in int8, the small head (standardise + dense layers) left in float: the
        # head's inputs are standardised embeddings whose range int8 represents poorly
        if representative is None or len(representative) == 0:
            raise ValueError("int8 needs representative photos to calibrate the activations")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_HEAD_OPS))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([x[None]] for x in representative[:8]), debug_options=options)
        return debugger.get_nondebug_quantized_model()
    return converter.convert()


def convert_fp16(model_path: Path) -> bytes:
    return convert(model_path, "fp16")


def calibration_batch(samples: Sequence, input_size, mode: str, n: int = CALIBRATION_PHOTOS, seed: int = 0) -> np.ndarray:
    """``n`` training photos, drawn evenly over the classes (rare classes set activation ranges
    too), prepared exactly as serving prepares an upload."""
    from .data import load_training_image
    from .preprocessing import prepare_batch

    rng = random.Random(seed)
    by_class: dict[str, list] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    for members in by_class.values():
        rng.shuffle(members)
    picked: list = []
    while len(picked) < min(n, len(samples)):
        for label in sorted(by_class):
            if by_class[label] and len(picked) < n:
                picked.append(by_class[label].pop())
    return prepare_batch([load_training_image(s, input_size) for s in picked], input_size, mode)


# --------------------------------------------------------------------------- measuring


def time_per_image(call, batch: np.ndarray, repeats: int) -> float:
    """Median milliseconds per image of ``call(batch)`` after one warm-up call."""
    return time_interleaved({"x": call}, batch, repeats)["x"]


def time_interleaved(calls: dict, batch: np.ndarray, repeats: int) -> dict:
    """Median milliseconds per image of each ``call(batch)``, the engines taking turns call by
    call, so that a shared machine's changing load weighs on all of them alike."""
    for call in calls.values():
        call(batch)
    times: dict = {name: [] for name in calls}
    for _ in range(max(1, repeats)):
        for name, call in calls.items():
            t = time.perf_counter()
            call(batch)
            times[name].append(time.perf_counter() - t)
    return {name: 1000.0 * statistics.median(ts) / len(batch) for name, ts in times.items()}


def run_batches(call, inputs: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray | None]:
    logits, embeddings = [], []
    for i in range(0, len(inputs), batch_size):
        lg, em = call(inputs[i : i + batch_size])
        logits.append(lg)
        embeddings.append(em)
    return np.concatenate(logits), None if embeddings[0] is None else np.concatenate(embeddings)


def match_outputs(path: Path, n_classes: int, batch: np.ndarray, keras_logits: np.ndarray) -> dict:
    """Which signature output is the logits: the one of width ``n_classes`` closest to Keras's."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    outs = next(iter(interpreter._get_full_signature_list().values()))["outputs"]
    names = sorted(outs)
    if len(names) == 1:
        return {"logits": names[0]}
    best, best_err = None, np.inf
    for name in names:
        other = [n for n in names if n != name][0]
        runtime = LiteRTRuntime(path, n_classes, 1, {"logits": name, "embedding": other}) if _width(interpreter, outs[name]) == n_classes else None
        if runtime is None:
            continue
        err = float(np.abs(runtime(batch)[0] - keras_logits).mean())
        if err < best_err:
            best, best_err = {"logits": name, "embedding": other}, err
    if best is None:
        raise ValueError(f"{path.name}: no output has {n_classes} columns")
    return best


def _width(interpreter, index: int) -> int:
    details = {d["index"]: d for d in interpreter.get_output_details()}
    return int(details[index]["shape"][-1])


def score(logits: np.ndarray, embedding: np.ndarray | None, samples, codes, temperature: float,
          gate=None, inputs: np.ndarray | None = None) -> dict:
    """Balanced accuracy and ECE on the model's classes (the metadata's headline metric), and the
    not-skin gate's false-rejection rate on these (all skin) photos."""
    from .evaluation import evaluate_probabilities
    from .inference import softmax

    report = evaluate_probabilities(softmax(logits, temperature), None, samples, codes)["all"]
    out = {"balanced_accuracy": float(report["balanced_accuracy"]), "ece": float(report["ece"])}
    if gate is not None and embedding is not None:
        out["gate_false_rejection"] = float(1.0 - np.mean(gate.is_skin(embedding, inputs)))
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.mean(np.sum(a * b, axis=1)))


# --------------------------------------------------------------------------- the export step


def export_litert(model_dir: str | Path, samples, calibration_samples=None, variants: Iterable[str] = VARIANTS,
                  max_drop: float = MAX_DROP, keep: Iterable[str] = (), threads: int = 1,
                  calibration_photos: int = CALIBRATION_PHOTOS, split: str = "test",
                  timing_repeats: int = 30, set_serving: bool = True) -> dict:
    """Convert, score and time each variant against the Keras model on ``samples`` (held-out
    photos); keep the chosen file (and those of ``keep`` that are within ``max_drop``) in the
    artifact and record everything."""
    from .data import load_training_image
    from .inference import Classifier
    from .preprocessing import normalize, resize

    model_dir = Path(model_dir)
    variants = [v for v in VARIANTS if v in set(variants)]
    keep = set(keep)
    classifier = Classifier.load(model_dir, runtime="keras", threads=threads)
    meta = classifier.metadata
    codes = [c for c, _ in classifier.classes]
    size, mode, temperature = classifier.input_size, classifier.preprocessing, classifier.temperature
    model_path = model_dir / meta.get("model_file", "model.keras")
    # the held-out photos, decoded once (uint8 keeps 2,000 photos in ~300 MB)
    pixels = np.stack([resize(load_training_image(s, size), size) for s in samples])
    inputs = normalize(pixels, mode)
    del pixels
    one, thirty_two = inputs[:1], inputs[: min(32, len(inputs))]

    started = time.time()
    flips = classifier.test_time_flips  # every engine is scored and timed as it will serve
    keras_logits, keras_emb = run_batches(classifier.forward, inputs)
    one_view_logits = classifier.engine_forward(one)[0]
    keras = {"file": meta.get("model_file", "model.keras"), "size_bytes": model_path.stat().st_size,
             **score(keras_logits, keras_emb, samples, codes, temperature, classifier.gate, inputs),
             "eval_s": round(time.time() - started, 1)}
    log.info("keras: %s", keras)

    representative = None
    if any(v.startswith("int8") for v in variants):
        if calibration_samples is None:
            raise ValueError("int8 needs calibration_samples (photos from the training split)")
        representative = calibration_batch(calibration_samples, size, mode, calibration_photos)

    results: dict[str, dict] = {}
    runtimes: dict = {}
    tmp_files: dict[str, Path] = {}
    for name in variants:
        tmp = model_dir.parent / f".{model_dir.name}.{VARIANT_FILES[name]}"
        t = time.time()
        tmp.write_bytes(convert(model_path, name, representative if name.startswith("int8") else None))
        convert_s = time.time() - t
        tmp_files[name] = tmp
        outputs = match_outputs(tmp, len(codes), one, one_view_logits)
        runtime = with_flips(LiteRTRuntime(tmp, len(codes), threads, outputs), flips, classifier.test_time_crop)
        t = time.time()
        logits, emb = run_batches(runtime, inputs)
        agreement = float(np.mean(logits.argmax(1) == keras_logits.argmax(1)))
        r = {"file": VARIANT_FILES[name], "size_bytes": tmp.stat().st_size, "outputs": outputs,
             **score(logits, emb, samples, codes, temperature, classifier.gate, inputs),
             "top1_agreement_with_keras": agreement,
             "embedding_cosine_to_keras": _cosine(emb, keras_emb) if emb is not None and keras_emb is not None else None,
             "convert_s": round(convert_s, 1), "eval_s": round(time.time() - t, 1)}
        r["balanced_accuracy_drop"] = keras["balanced_accuracy"] - r["balanced_accuracy"]
        r["within_max_drop"] = bool(r["balanced_accuracy_drop"] <= max_drop)
        if name.startswith("int8"):
            r["calibration"] = {"photos": len(representative), "split": "train", "drawn": "evenly over classes, seed 0"}
        results[name] = r
        runtimes[name] = runtime
        log.info("%s: %s", name, json.dumps(r))

    # speed last, all engines taking turns (one thread each: how a worker serves)
    engines = {"keras": classifier.forward, **runtimes}
    for key, batch, n in (("ms_per_image_b1", one, timing_repeats),
                          ("ms_per_image_b32", thirty_two, max(3, timing_repeats // 10))):
        for name, ms in time_interleaved(engines, batch, n).items():
            (keras if name == "keras" else results[name])[key] = ms
    log.info("speed: %s", {n: (r.get("ms_per_image_b1"), r.get("ms_per_image_b32")) for n, r in [("keras", keras), *results.items()]})
    runtimes.clear()

    chosen = choose_serving(keras, results, max_drop)
    # also keep the variants asked for, but never one that loses more than max_drop
    kept = {n for n in keep if n in results and results[n]["within_max_drop"]}
    if chosen["runtime"] == "litert":
        kept.add(chosen["variant"])
    for name, tmp in tmp_files.items():
        results[name]["kept"] = name in kept
        if name in kept:
            tmp.replace(model_dir / VARIANT_FILES[name])
        else:
            tmp.unlink()
    for name, file in VARIANT_FILES.items():
        stale = model_dir / file
        if name not in kept and stale.exists():  # an older export that this run did not keep
            stale.unlink()
    section = {
        "split": split, "photos": len(samples), "threads": threads, "max_drop": max_drop, "test_time_flips": flips,
        "test_time_crop": classifier.test_time_crop,
        "timing": f"median of {timing_repeats} calls at batch 1, {max(3, timing_repeats // 10)} at batch 32, "
                  f"{threads} thread(s), after one warm-up call, the engines taking turns; "
                  f"{flips} view(s) of each photo per call (test-time flips)",
        "keras": keras, "variants": results,
    }
    kept_files = [results[n] for n in results if results[n]["kept"]]
    if kept_files:
        section["file"] = (chosen["file"] if chosen["runtime"] == "litert"
                           else min(kept_files, key=lambda v: v["ms_per_image_b1"])["file"])
    chosen["chosen_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # re-read: other keys (thresholds...) may have been edited while this ran
    metadata = read_metadata(model_dir, verify=False)
    metadata.pop("files", None)
    metadata["tflite"] = section
    if set_serving:
        metadata["serving"] = chosen
    write_artifact(model_dir, metadata)
    log.info("serving: %s", json.dumps(chosen))
    return {"tflite": section, "serving": chosen}


def export_tflite(model_dir: str | Path, samples, max_drop: float = MAX_DROP, batch_size: int = 32) -> dict:
    """The float16 export alone, kept when it scores within ``max_drop`` (older interface)."""
    out = export_litert(model_dir, samples, variants=("fp16",), max_drop=max_drop, set_serving=False,
                        keep=("fp16",), timing_repeats=5)
    fp16 = out["tflite"]["variants"]["fp16"]
    return {"file": TFLITE_FILE, "photos": len(samples), "accepted": fp16["kept"],
            "balanced_accuracy_drop": fp16["balanced_accuracy_drop"],
            "keras": out["tflite"]["keras"], "tflite_fp16": fp16}


class LiteModel:
    """Runs a LiteRT export in fixed-size batches; returns (logits, embedding) like the Keras model."""

    def __init__(self, path: Path, n_classes: int, batch_size: int = 32, threads: int = 2):
        self.batch_size = batch_size
        self.runtime = LiteRTRuntime(Path(path), n_classes, threads)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return run_batches(self.runtime, np.asarray(batch, dtype=np.float32), self.batch_size)
