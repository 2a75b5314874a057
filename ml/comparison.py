"""The architecture comparison: each network trained end to end on the same splits, within
the same wall-time budget, scored with the same metric code as the shipped model.

    python -m ml.comparison --ham DATA/ham10000 --dermnet DATA/dermnet \\
        --archs baseline_cnn,mobilenet_v2,densenet121 --size 112 --minutes 12 \\
        --out ml/runs/comparison.json --artifact ml/artifacts/effnetlite0-v2

Why it looks like this: a 2-core CPU cannot afford to decode and resize 14k JPEGs
every epoch, so every photo of the train / val / test splits (the splits of
``python -m ml train``: same loaders, same seed, same lesion-level grouping, DermNet
logo cropped) is decoded once into a uint8 array at a reduced resolution, through the
serving code (``open_image`` + ``resize`` from ``ml.preprocessing``; ``normalize`` is
applied per batch, so a batch equals ``prepare_batch`` of the same photos). Training then
only augments (flips, transpose, small rotation and zoom, brightness and contrast) in
TensorFlow. Each architecture gets the same wall-time budget: on this machine the real
question is "what does a fixed amount of CPU buy", and a fixed epoch count would let
the small networks off lightly.

Without internet Keras cannot fetch ImageNet weights, so the networks here train
from scratch (``--weights none``); ``--weights imagenet`` or a local weights file works
where they can be loaded. EfficientNet-Lite0 is not retrained: ``--artifact DIR`` adds the
shipped model's own metrics from its ``metadata.json`` and times its ``model.keras``.
Results are merged into ``--out`` by architecture, so the networks can be run one by one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger("ml.comparison")

ML_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = ML_DIR / "cache" / "comparison"
DEFAULT_RUNS = ML_DIR / "runs"
CACHE_SPLITS = ("train", "val", "test")

# --------------------------------------------------------------------------- image cache


def _cache_key(splits: dict, size: int) -> dict:
    return {
        "size": int(size),
        "splits": {k: [[s.path, s.label, s.source] for s in splits[k]] for k in CACHE_SPLITS},
    }


def build_image_cache(splits: dict, size: int, cache_dir: str | Path, progress: bool = True) -> dict[str, np.ndarray]:
    """Decode every photo of every split once into ``cache_dir/<size>px/<split>.npy`` (uint8
    N×size×size×3) and return the arrays. A cache made from other photos or another size
    is rebuilt, never mixed in."""
    from .data import load_training_image
    from .preprocessing import resize

    folder = Path(cache_dir) / f"{int(size)}px"
    folder.mkdir(parents=True, exist_ok=True)
    key = _cache_key(splits, size)
    key_path = folder / "manifest.json"
    fresh = key_path.is_file() and json.loads(key_path.read_text()) == key
    out = {}
    for split in CACHE_SPLITS:
        path = folder / f"{split}.npy"
        samples = splits[split]
        if fresh and path.is_file():
            arr = np.load(path, mmap_mode=None)
            if arr.shape == (len(samples), size, size, 3):
                out[split] = arr
                continue
        started = time.time()
        arr = np.zeros((len(samples), size, size, 3), dtype=np.uint8)
        iterator = enumerate(samples)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(samples), desc=f"decode {split} @{size}px", mininterval=10, file=sys.stderr)
        for i, sample in iterator:
            arr[i] = resize(load_training_image(sample, (size, size)), (size, size))
        tmp = folder / f"{split}.tmp.npy"
        np.save(tmp, arr)
        os.replace(tmp, path)
        log.info("cached %d %s photos at %dpx in %.0f s", len(samples), split, size, time.time() - started)
        out[split] = arr
    key_path.write_text(json.dumps(key))
    return out


# --------------------------------------------------------------------------- tensors


def tf_normalize(x, mode: str):
    """``ml.preprocessing.normalize`` in TensorFlow, for float32 0..255 batches (a test
    checks both give the same numbers)."""
    import tensorflow as tf

    from .preprocessing import _IMAGENET_MEAN, _IMAGENET_STD

    if mode == "efficientnet_lite":
        return (x - 127.0) / 128.0
    if mode == "mobilenet_v2":
        return x / 127.5 - 1.0
    if mode == "densenet":
        return (x / 255.0 - tf.constant(_IMAGENET_MEAN)) / tf.constant(_IMAGENET_STD)
    if mode == "unit":
        return x / 255.0
    if mode == "raw":
        return x
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def training_dataset(images: np.ndarray, labels: np.ndarray, weights: np.ndarray, mode: str, batch_size: int, seed: int):
    """Endless, shuffled, augmented batches of (normalised images, labels, sample weights)."""
    import keras
    import tensorflow as tf

    size = images.shape[1]
    x_all = tf.constant(images)
    y_all = tf.constant(labels.astype(np.int32))
    w_all = tf.constant(weights.astype(np.float32))
    rotate = keras.layers.RandomRotation(25 / 360, fill_mode="reflect", seed=seed)
    zoom = keras.layers.RandomZoom((-0.2, 0.0), fill_mode="reflect", seed=seed + 1)
    gen = tf.random.Generator.from_seed(seed)

    def augment(idx):
        x = tf.cast(tf.gather(x_all, idx), tf.float32)
        n = tf.shape(x)[0]
        # the eight flips/transposes of a square: skin photos have no "up"
        x = tf.where(gen.uniform([n, 1, 1, 1]) < 0.5, tf.reverse(x, [2]), x)
        x = tf.where(gen.uniform([n, 1, 1, 1]) < 0.5, tf.reverse(x, [1]), x)
        x = tf.where(gen.uniform([n, 1, 1, 1]) < 0.5, tf.transpose(x, [0, 2, 1, 3]), x)
        x = zoom(rotate(x, training=True), training=True)
        x = tf.ensure_shape(x, [None, size, size, 3])
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * gen.uniform([n, 1, 1, 1], 0.8, 1.2) + mean  # contrast
        x = x * gen.uniform([n, 1, 1, 1], 0.8, 1.2)  # brightness
        x = tf.clip_by_value(x, 0.0, 255.0)
        return tf_normalize(x, mode), tf.gather(y_all, idx), tf.gather(w_all, idx)

    ds = tf.data.Dataset.range(len(images)).shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return ds.repeat().batch(batch_size, drop_remainder=True).map(augment).prefetch(1)


def predict_logits(model, images: np.ndarray, mode: str, batch_size: int = 64, with_embedding: bool = False):
    """Logits (and embeddings) of clean cached photos, normalised as in serving."""
    from .preprocessing import normalize

    logits, embeddings = [], []
    for i in range(0, len(images), batch_size):
        out = model(normalize(images[i : i + batch_size], mode), training=False)
        if isinstance(out, (list, tuple)):
            logits.append(np.asarray(out[0]))
            embeddings.append(np.asarray(out[1]))
        else:
            logits.append(np.asarray(out))
    logits = np.concatenate(logits) if logits else np.zeros((0, 0))
    if with_embedding:
        return logits, (np.concatenate(embeddings) if embeddings else None)
    return logits


# --------------------------------------------------------------------------- training


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_architecture(
    arch: str,
    cache: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    n_classes: int,
    weights: str | None = None,
    minutes: float = 12.0,
    max_epochs: int = 1000,
    epoch_images: int = 2048,
    batch_size: int = 32,
    lr: float = 1e-3,
    patience: int = 5,
    seed: int = 0,
    class_weight_power: float = 1.0,
    checkpoint_dir: str | Path | None = None,
    log_every: int = 20,
):
    """Train ``arch`` (backbone + dropout + linear head) on the cached photos until the
    wall-time budget, ``max_epochs`` or early stopping (validation balanced accuracy, no
    gain for ``patience`` epochs) ends it; keep the best epoch. An "epoch" is
    ``epoch_images`` training photos (less than a pass over the data, so that a slow
    network is still validated a few times within its budget). The learning rate halves
    after two epochs without a gain.

    Returns (serving model [logits, embedding], backbone, training record)."""
    import keras

    from .architectures import build_backbone, build_head, build_serving_model
    from .metrics import balanced_accuracy
    from .training import balanced_class_weights

    keras.utils.set_random_seed(seed)
    size = cache["train"].shape[1]
    backbone = build_backbone(arch, (size, size), weights)
    head = build_head(int(backbone.model.output_shape[-1]), n_classes, hidden=0, dropout=0.4, seed=seed)
    inputs = keras.Input((size, size, 3), name="image")
    model = keras.Model(inputs, head(backbone.model(inputs)), name=f"{arch}_train")
    bn_momentum = None
    if backbone.weights in (None, "none", "None", ""):
        # From scratch, the Keras defaults (0.99; MobileNetV2 0.999) make the moving
        # statistics that inference uses trail the weights by hundreds of steps, and a
        # budget of a few hundred steps is then scored on stale statistics (measured: a
        # MobileNetV2 at 1/13 validation balanced accuracy, predicting one class, while
        # its training accuracy rose). 0.9 is PyTorch's default.
        bn_momentum = 0.9
        for layer in backbone.model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    optimizer = keras.optimizers.Adam(lr)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    known = y["train"] >= 0
    x_train, y_train = cache["train"][known], y["train"][known]
    cw = balanced_class_weights(y_train, n_classes, class_weight_power)
    w_train = np.array([cw[int(c)] for c in y_train], dtype=np.float32)
    val_known = y["val"] >= 0
    x_val, y_val = cache["val"][val_known], y["val"][val_known]
    batch_size = max(1, min(batch_size, len(x_train)))
    steps = max(1, int(np.ceil(min(epoch_images, len(x_train)) / batch_size)))
    ds = iter(training_dataset(x_train, y_train, w_train, backbone.preprocessing, batch_size, seed))

    budget = 60.0 * minutes
    started, cpu0 = time.time(), cpu_seconds()
    history: list[dict] = []
    best = {"score": -1.0, "epoch": 0, "weights": None}
    images_seen, stopped = 0, "max_epochs"
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir) / f"{arch}-{size}px.best.weights.h5"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    log.info("%s: %s parameters, %d training photos, %d steps of %d per epoch, budget %.1f min",
             arch, f"{model.count_params():,}", len(x_train), steps, batch_size, minutes)
    for epoch in range(1, max_epochs + 1):
        t0 = time.time()
        losses, accs = [], []
        out_of_time = False
        for step in range(steps):
            xb, yb, wb = next(ds)
            metrics = model.train_on_batch(xb, yb, sample_weight=wb, return_dict=True)
            losses.append(float(metrics["loss"]))
            accs.append(float(metrics["accuracy"]))
            images_seen += batch_size
            if log_every and (step + 1) % log_every == 0:
                rate = (step + 1) * batch_size / max(time.time() - t0, 1e-9)
                log.info("%s epoch %d step %d/%d loss %.4f (%.1f img/s, %.0f s of %.0f)",
                         arch, epoch, step + 1, steps, np.mean(losses[-log_every:]), rate, time.time() - started, budget)
            if time.time() - started > budget:
                out_of_time = True
                break
        val_logits = predict_logits(model, x_val, backbone.preprocessing)
        score = balanced_accuracy(y_val, val_logits.argmax(1))
        record = {
            "epoch": epoch,
            "steps": len(losses),
            "loss": float(np.mean(losses)),
            "accuracy": float(np.mean(accs)),
            "val_accuracy": float(np.mean(val_logits.argmax(1) == y_val)),
            "val_balanced_accuracy": float(score),
            "lr": float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
            "epoch_s": round(time.time() - t0, 1),
            "elapsed_s": round(time.time() - started, 1),
        }
        history.append(record)
        improved = score > best["score"]
        if improved:
            best.update(score=score, epoch=epoch, weights=model.get_weights())
            if ckpt is not None:
                model.save_weights(ckpt)
        log.info("%s epoch %d: loss %.4f acc %.3f | val acc %.3f val bal acc %.4f%s | %.0f s (%.0f s of %.0f)",
                 arch, epoch, record["loss"], record["accuracy"], record["val_accuracy"], score,
                 " *" if improved else "", record["epoch_s"], record["elapsed_s"], budget)
        if out_of_time:
            stopped = "time_budget"
            break
        since = epoch - best["epoch"]
        if since >= patience:
            stopped = "early_stopping"
            break
        if since >= 2 and since % 2 == 0:
            optimizer.learning_rate.assign(float(keras.ops.convert_to_numpy(optimizer.learning_rate)) * 0.5)
    model.set_weights(best["weights"])
    training = {
        "wall_s": round(time.time() - started, 1),
        "cpu_s": round(cpu_seconds() - cpu0, 1),
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "epoch_images": steps * batch_size,
        "images_seen": images_seen,
        "passes_over_train": round(images_seen / max(len(x_train), 1), 2),
        "stopped": stopped,
        "budget_minutes": minutes,
        "batch_size": batch_size,
        "lr": lr,
        "patience": patience,
        "seed": seed,
        "class_weights": f"balanced ** {class_weight_power}",
        "batchnorm_momentum": bn_momentum,
        "checkpoint": str(ckpt) if ckpt else None,
        "history": history,
    }
    serving = build_serving_model(backbone.model, head)
    return serving, backbone, training


# --------------------------------------------------------------------------- measurements


def count_params(model) -> int:
    return int(model.count_params())


def saved_size(model, tmp_dir: str | Path) -> int:
    """Bytes of the model saved as ``.keras`` (no optimizer state: the serving file)."""
    path = Path(tmp_dir) / "size-probe.keras"
    model.save(path)
    size = path.stat().st_size
    path.unlink()
    return int(size)


def ms_per_image(model, input_size: Sequence[int], batch_size: int, repeats: int = 10, warmup: int = 2) -> float:
    """Median wall milliseconds per image of one forward pass on this machine, called the
    way ``ml.inference.Classifier`` serves it: through one traced ``tf.function`` (eager
    calls cost several times more per single image)."""
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    h, w = int(input_size[0]), int(input_size[1])
    batch = np.random.default_rng(0).uniform(-1, 1, (batch_size, h, w, 3)).astype(np.float32)
    for _ in range(warmup):
        call(batch)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call(batch)
        times.append(time.perf_counter() - t)
    return round(1000.0 * float(np.median(times)) / batch_size, 2)


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def latency(model, input_size, repeats_b1: int, repeats_b32: int) -> dict:
    return {
        "batch1": ms_per_image(model, input_size, 1, repeats=repeats_b1),
        "batch32": ms_per_image(model, input_size, 32, repeats=repeats_b32, warmup=1),
        "load_average": _load_average(),
    }


# --------------------------------------------------------------------------- one architecture


def compare_one(
    arch: str,
    splits: dict,
    cache: dict[str, np.ndarray],
    codes: list[str],
    weights: str | None,
    minutes: float,
    runs_dir: Path,
    export_dir: Path | None = None,
    latency_repeats: tuple[int, int] = (30, 5),
    target_accuracy: float = 0.80,
    gate_images: int = 3000,
    **train_kwargs,
) -> dict:
    """Train, calibrate on validation, score val and test, measure; optionally export an artifact."""
    import keras

    from . import calibration
    from .evaluation import abstention_report, evaluate_probabilities, summary_of
    from .inference import softmax
    from .training import encode_labels

    y = {k: encode_labels(splits[k], codes) for k in CACHE_SPLITS}
    serving, backbone, training = train_architecture(
        arch, cache, y, len(codes), weights=weights, minutes=minutes, checkpoint_dir=runs_dir / "checkpoints", **train_kwargs
    )
    t0 = time.time()
    logits, emb = {}, {}
    for split in ("val", "test"):
        logits[split], emb[split] = predict_logits(serving, cache[split], backbone.preprocessing, with_embedding=True)
    val_known = y["val"] >= 0
    temperature = calibration.fit_temperature(logits["val"][val_known], y["val"][val_known])
    probs = {k: softmax(v, temperature) for k, v in logits.items()}
    val_conf = probs["val"].max(axis=1)
    val_correct = (probs["val"].argmax(axis=1) == y["val"]) & val_known
    min_confidence = calibration.choose_min_confidence(val_conf, val_correct, target_accuracy)
    reports = {}
    for split in ("val", "test"):
        report = evaluate_probabilities(probs[split], softmax(logits[split], 1.0), splits[split], codes)
        report["abstention"] = abstention_report(probs[split], y[split], splits[split], codes, min_confidence)
        reports[split] = report
    size = cache["train"].shape[1]
    record = {
        "arch": arch,
        "source": "trained here (ml.comparison)",
        "weights": "from scratch" if backbone.weights in (None, "none", "None", "") else str(backbone.weights),
        "input_size": [size, size],
        "preprocessing": backbone.preprocessing,
        "classes": list(codes),
        "params": count_params(serving),
        "file_size_bytes": saved_size(serving, runs_dir),
        "ms_per_image": latency(serving, (size, size), *latency_repeats),
        "temperature": temperature,
        "min_confidence": min_confidence,
        "training": training,
        "val": summary_of(reports["val"]),
        "test": summary_of(reports["test"]),
        "evaluation_s": round(time.time() - t0, 1),
    }
    if export_dir is not None:
        record["artifact"] = export_artifact(
            export_dir, serving, backbone, splits, cache, codes, record, reports, emb, gate_images=gate_images
        )
    keras.backend.clear_session()
    return record


def export_artifact(out: Path, serving, backbone, splits, cache, codes, record, reports, emb, gate_images: int = 3000) -> dict:
    """Write a servable artifact (``ml.inference.Classifier`` contract): ``model.keras`` with
    [logits, embedding] outputs, the Mahalanobis not-skin gate of ``ml.gate`` fitted on (up
    to ``gate_images``) clean training photos and calibrated on validation, ``metadata.json``."""
    from .artifact import write_artifact
    from .classes import label_for
    from .data import summarise
    from .evaluation import gate_report
    from .gate import MahalanobisGate
    from .preprocessing import normalize

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.keras", "gate.npz", "metadata.json"):
        (out / stale).unlink(missing_ok=True)
    size = cache["train"].shape[1]
    mode = backbone.preprocessing
    # Gate: every training photo is skin ("other" conditions included); a spread-out subset.
    pick = np.linspace(0, len(splits["train"]) - 1, min(gate_images, len(splits["train"]))).astype(int)
    _, train_emb = predict_logits(serving, cache["train"][pick], mode, with_embedding=True)
    gate = MahalanobisGate.fit(train_emb, np.array([splits["train"][i].label for i in pick]))
    val_std = np.concatenate([MahalanobisGate.pixel_std(normalize(cache["val"][i : i + 256], mode)) for i in range(0, len(cache["val"]), 256)])
    test_std = np.concatenate([MahalanobisGate.pixel_std(normalize(cache["test"][i : i + 256], mode)) for i in range(0, len(cache["test"]), 256)])
    gate.calibrate(emb["val"], val_std, max_false_rejection=0.02)
    serving.save(out / "model.keras")
    gate_config = gate.save(out)
    metrics = {}
    for split, std in (("val", val_std), ("test", test_std)):
        metrics[split] = reports[split]
        ok = (gate.distance(emb[split]) <= gate.threshold) & (std >= gate.min_pixel_std)
        metrics[split]["gate_false_rejection"] = float(1.0 - ok.mean())
    metrics["nonskin_gate"] = gate_report(serving, gate, mode, (size, size))
    metrics["temperature"] = record["temperature"]
    from .training import _round

    training = {k: v for k, v in record["training"].items() if k != "checkpoint"}
    metadata = {
        "name": "skin-condition classifier",
        "version": out.name,
        "architecture": backbone.arch,
        "backbone_weights": record["weights"],
        "classes": [{"code": c, "label": label_for(c)} for c in codes],
        "input_size": [size, size],
        "preprocessing": mode,
        "model_file": "model.keras",
        "outputs": ["logits", "embedding"],
        "temperature": record["temperature"],
        "thresholds": {"min_confidence": record["min_confidence"], "target_accuracy_when_confident": 0.80},
        "gate": {**gate_config, "max_false_rejection": 0.02, "fitted_on_train_photos": int(len(pick))},
        "other_handling": "class" if "other" in codes else "gate",
        "metrics": _round(metrics),
        "training": {
            **_round(training),
            "method": "end to end from the cached images of ml.comparison (see docs/MODEL_COMPARISON.md)",
            "command": "python -m ml.comparison " + " ".join(sys.argv[1:]),
        },
        "training_data": summarise(splits),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "licence": "weights derived from HAM10000 (CC BY-NC-SA 4.0) and DermNet NZ (CC BY-NC-ND 3.0 NZ): non-commercial use only",
    }
    metadata = write_artifact(out, metadata)
    total = sum((out / name).stat().st_size for name in metadata["files"])
    log.info("wrote artifact %s (%.1f MB)", out, total / 1e6)
    return {"dir": str(out), "bytes": int(total), "nonskin_rejected": metrics["nonskin_gate"]["rejected"],
            "nonskin_n": metrics["nonskin_gate"]["n"], "gate_false_rejection_test": metrics["test"]["gate_false_rejection"]}


# --------------------------------------------------------------------------- the shipped artifact


def artifact_record(directory: str | Path, latency_repeats: tuple[int, int] = (30, 5), measure: bool = True, splits: dict | None = None) -> dict:
    """The shipped model's row, from its ``metadata.json`` (metrics as the training run wrote
    them) plus its file sizes and, with ``measure``, parameters and latency of its model.keras."""
    from .artifact import read_metadata
    from .data import summarise
    from .evaluation import summary_of

    directory = Path(directory)
    meta = read_metadata(directory, verify=True)
    metrics = meta.get("metrics", {})
    training = meta.get("training", {})
    record = {
        "arch": meta.get("architecture"),
        "source": f"shipped artifact {directory.name} (metadata.json; not retrained here)",
        "version": meta["version"],
        "weights": str(meta.get("backbone_weights")),
        "input_size": list(meta["input_size"])[:2],
        "preprocessing": meta["preprocessing"],
        "classes": [c["code"] for c in meta["classes"]],
        "file_size_bytes": int((directory / meta.get("model_file", "model.keras")).stat().st_size),
        "artifact_bytes": int(sum((directory / n).stat().st_size for n in meta.get("files", {}))),
        "temperature": meta.get("temperature"),
        "min_confidence": (meta.get("thresholds") or {}).get("min_confidence"),
        "training": {
            "wall_times_s": training.get("wall_times_s"),
            "epochs": training.get("epochs_run"),
            "best_epoch": training.get("best_epoch"),
            "finetune": {k: v for k, v in (training.get("finetune") or {}).items() if k != "history"} or None,
            "command": training.get("command"),
        },
        "val": summary_of(metrics["val"]) if "val" in metrics else None,
        "test": summary_of(metrics["test"]) if "test" in metrics else None,
    }
    if splits is not None and "training_data" in meta:
        record["same_splits"] = summarise(splits) == meta["training_data"]
    if measure:
        import keras

        model = keras.saving.load_model(directory / meta.get("model_file", "model.keras"), compile=False)
        record["params"] = count_params(model)
        record["ms_per_image"] = latency(model, record["input_size"], *latency_repeats)
        keras.backend.clear_session()
    return record


def remeasure_latency(path: Path, archs: Sequence[str], size: int, n_classes: int, repeats: tuple[int, int]) -> int:
    """Time the recorded architectures again, back to back, without training: the weights'
    values do not change the cost of a forward pass, so a freshly built network will do.
    Useful when the machine was busier during one run than another."""
    import keras

    from .architectures import build_backbone, build_head, build_serving_model

    data = json.loads(Path(path).read_text())
    for record in data["results"]:
        if record["arch"] not in archs or record.get("source", "").startswith("shipped"):
            continue
        bb = build_backbone(record["arch"], (size, size), None)
        model = build_serving_model(bb.model, build_head(int(bb.model.output_shape[-1]), n_classes, hidden=0))
        record["ms_per_image"] = latency(model, (size, size), *repeats)
        log.info("%s: %s", record["arch"], record["ms_per_image"])
        keras.backend.clear_session()
    Path(path).write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(table(data))
    return 0


# --------------------------------------------------------------------------- results file


def merge_results(path: Path, header: dict, records: list[dict]) -> dict:
    """Add (or replace, by artifact version or else by ``arch``) records in the JSON results file."""
    data = {"results": []}
    if path.is_file():
        data = json.loads(path.read_text())
    data.update(header)
    by_arch = {r.get("version") or r["arch"]: r for r in data.get("results", [])}
    for r in records:
        by_arch[r.get("version") or r["arch"]] = r
    data["results"] = list(by_arch.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return data


def table(data: dict) -> str:
    """The comparison as a Markdown table."""
    def pct(v):
        return "–" if v is None else f"{100 * v:.1f}"

    lines = [
        "| architecture | weights | input | parameters | file size | ms/img b1 | ms/img b32 | val bal. acc (13) | test bal. acc (13) | test bal. acc HAM-7 lesion | test top-4 (13) | test mel AUC HAM-7 lesion | test ECE (13) | training wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        val, test = r.get("val") or {}, r.get("test") or {}
        lat = r.get("ms_per_image") or {}
        tr = r.get("training") or {}
        if "wall_s" in tr:
            wall = f"{tr['wall_s'] / 60:.1f} min ({tr['passes_over_train']} passes)"
        else:
            w = tr.get("wall_times_s") or {}
            wall = f"{w.get('total_s', float('nan')) / 60:.1f} min after feature caching"
        lines.append(
            "| {arch} | {weights} | {size} | {params} | {mb:.1f} MB | {b1} | {b32} | {va} | {ta} | {th} | {t4} | {mel} | {ece} | {wall} |".format(
                arch=f"{r['arch']} ({r['version']})" if r.get("version") else r["arch"], weights=r["weights"], size=f"{r['input_size'][0]}px",
                params=f"{r['params'] / 1e6:.2f} M" if r.get("params") else "–",
                mb=r["file_size_bytes"] / 1e6, b1=lat.get("batch1", "–"), b32=lat.get("batch32", "–"),
                va=pct(val.get("all", {}).get("balanced_accuracy")), ta=pct(test.get("all", {}).get("balanced_accuracy")),
                th=pct(test.get("ham7_lesion_level", {}).get("balanced_accuracy")),
                t4=pct(test.get("all", {}).get("top4_accuracy")),
                mel="–" if test.get("ham7_lesion_level", {}).get("mel_auc") is None else f"{test['ham7_lesion_level']['mel_auc']:.3f}",
                ece="–" if test.get("all", {}).get("ece") is None else f"{test['all']['ece']:.3f}",
                wall=wall,
            )
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    from .cli import _add_data_args

    p = argparse.ArgumentParser(prog="python -m ml.comparison", description=__doc__.split("\n\n")[0])
    _add_data_args(p)
    p.add_argument("--archs", default="baseline_cnn,mobilenet_v2,densenet121", help="comma-separated architectures to train")
    p.add_argument("--weights", default="none", help='"none" (from scratch), "imagenet" or a local weights file')
    p.add_argument("--size", type=int, default=112, help="input size in pixels (square)")
    p.add_argument("--minutes", type=float, default=12.0, help="wall-time training budget per architecture")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--epoch-images", type=int, default=2048, help="training photos per epoch (validation after each)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--other", choices=["class", "gate"], default="class", help='as in `python -m ml train` (default "class")')
    p.add_argument("--artifact", type=Path, action="append", default=[],
                   help="a shipped artifact whose metadata metrics join the table (not retrained; repeatable)")
    p.add_argument("--export", action="append", default=[], metavar="ARCH=DIR",
                   help="also write a servable artifact of this trained architecture, e.g. densenet121=ml/artifacts/densenet121-v1")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="image cache folder (git-ignored)")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="logs and checkpoints")
    p.add_argument("--out", type=Path, default=DEFAULT_RUNS / "comparison.json")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    p.add_argument("--latency-only", action="store_true",
                   help="re-time the --archs already in --out (no training), e.g. on a quieter machine")
    p.add_argument("--latency-repeats", default="30,5", help=argparse.SUPPRESS)  # tests use fewer
    p.add_argument("--max-per-split", type=int, default=None, help=argparse.SUPPRESS)  # tests only
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .cli import _limit_threads, load_splits

    _limit_threads(args.threads)
    archs = [a for a in args.archs.split(",") if a]
    args.runs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.FileHandler(args.runs / f"compare-{'-'.join(archs) or 'artifacts'}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)

    from .training import class_codes

    exports = dict(item.split("=", 1) for item in args.export)
    unknown = set(exports) - set(archs)
    if unknown:
        raise SystemExit(f"--export names architectures not in --archs: {sorted(unknown)}")
    repeats = tuple(int(x) for x in args.latency_repeats.split(","))
    splits = load_splits(args)
    if args.max_per_split:
        splits = {k: v[: args.max_per_split] for k, v in splits.items()}
    codes = class_codes(args.other)
    header = {
        "command": "python -m ml.comparison " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
    }
    records = []
    if args.latency_only:
        return remeasure_latency(args.out, archs, args.size, len(codes), repeats)
    for directory in args.artifact:
        records.append(artifact_record(directory, repeats, splits=splits))
        merge_results(args.out, header, records)
    if archs:
        t0 = time.time()
        cache = build_image_cache(splits, args.size, args.cache)
        header["image_cache_s"] = round(time.time() - t0, 1)
        for arch in archs:
            record = compare_one(
                arch, splits, cache, codes, args.weights, args.minutes, args.runs,
                export_dir=Path(exports[arch]) if arch in exports else None,
                latency_repeats=repeats, max_epochs=args.max_epochs, epoch_images=args.epoch_images,
                batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed,
            )
            records.append(record)
            merge_results(args.out, header, records)
            t = record["test"]["all"]
            log.info("%s done: test balanced accuracy %.4f, training %.0f s", arch, t["balanced_accuracy"], record["training"]["wall_s"])
    data = merge_results(args.out, header, records)
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
