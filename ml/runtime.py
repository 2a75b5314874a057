"""The engines that run an artifact's network: Keras (TensorFlow) or a LiteRT export.

A Celery worker only needs ``(logits, embedding)`` for a batch. The LiteRT engine gives it that with
the ``ai_edge_litert`` interpreter alone, without importing TensorFlow or Keras, so a worker process
is ready in well under a second and stays small (see docs/PERFORMANCE.md). Which engine serves is
written into the artifact by the export step (``metadata["serving"]``, chosen by
:func:`choose_serving`) and can be overridden (``ML_RUNTIME=keras|litert``).

Nothing here imports TensorFlow at module level.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

RUNTIMES = ("auto", "keras", "litert")
DEFAULT_THREADS = 1
#: The largest balanced-accuracy loss (absolute, 0.005 = half a point) a faster engine may cost.
MAX_DROP = 0.005
#: Speeds closer than this (relative) are a tie: a busy shared machine does not time finer.
SPEED_TIE = 0.05


class RuntimeSelectionError(ValueError):
    """The requested engine is unknown or the artifact has no file for it."""


# --------------------------------------------------------------------------- choosing


def choose_serving(keras: Mapping, variants: Mapping[str, Mapping], max_drop: float = MAX_DROP,
                   speed_key: str = "ms_per_image_b1", tie: float = SPEED_TIE) -> dict:
    """The fastest engine whose test balanced accuracy is within ``max_drop`` of the Keras model's.

    ``keras`` and each of ``variants`` (LiteRT exports by name, each with its ``file``) carry
    ``balanced_accuracy`` and a speed under ``speed_key``; a variant may also carry
    ``gate_false_rejection``, which must not rise by more than ``max_drop`` either (the embedding
    feeds the not-skin gate). The Keras model is always a candidate, so something is always chosen.
    Engines within ``tie`` (5 %) of the fastest count as equally fast: timings on a shared machine
    are not finer than that. Among those the smaller file wins (less to load, less memory), then
    the more accurate one.
    """
    base_acc = float(keras["balanced_accuracy"])
    base_fr = keras.get("gate_false_rejection")
    candidates = [("keras", "keras", keras)]
    for name in sorted(variants):
        v = variants[name]
        if base_acc - float(v["balanced_accuracy"]) > max_drop + 1e-12:
            continue
        fr = v.get("gate_false_rejection")
        if base_fr is not None and fr is not None and float(fr) - float(base_fr) > max_drop + 1e-12:
            continue
        candidates.append(("litert", name, v))
    fastest = min(float(c[2][speed_key]) for c in candidates)
    tied = [c for c in candidates if float(c[2][speed_key]) <= fastest * (1.0 + tie)]
    runtime, name, v = min(tied, key=lambda c: (c[2].get("size_bytes", float("inf")),
                                                -float(c[2]["balanced_accuracy"]), float(c[2][speed_key])))
    return {"runtime": runtime, "variant": name, "file": v.get("file"), speed_key: float(v[speed_key]),
            "balanced_accuracy": float(v["balanced_accuracy"]),
            "balanced_accuracy_drop": base_acc - float(v["balanced_accuracy"]),
            "rule": f"fastest by {speed_key} with balanced accuracy within {100 * max_drop:g} pt of Keras; "
                    f"engines within {100 * tie:g} % of the fastest count as tied and the smallest file wins"}


def resolve_runtime(metadata: Mapping, requested: str | None = "auto") -> tuple[str, str]:
    """``(engine, file)`` to load: the artifact's ``serving`` choice unless ``requested`` names one."""
    requested = (requested or "auto").strip().lower()
    if requested not in RUNTIMES:
        raise RuntimeSelectionError(f"unknown runtime {requested!r}; expected one of {RUNTIMES}")
    keras_file = metadata.get("model_file", "model.keras")
    serving = metadata.get("serving") or {}
    if requested == "keras":
        return "keras", keras_file
    if requested == "auto":
        if serving.get("runtime") == "litert" and serving.get("file"):
            return "litert", serving["file"]
        return "keras", keras_file
    # litert asked for explicitly: the chosen export, else the fastest export kept in the artifact
    if serving.get("runtime") == "litert" and serving.get("file"):
        return "litert", serving["file"]
    kept = [v for v in ((metadata.get("tflite") or {}).get("variants") or {}).values() if v.get("kept")]
    if kept:
        return "litert", min(kept, key=lambda v: v.get("ms_per_image_b1", float("inf")))["file"]
    legacy = (metadata.get("tflite") or {}).get("file")
    if legacy:
        return "litert", legacy
    raise RuntimeSelectionError("ML_RUNTIME=litert but the artifact has no LiteRT export")


def threads_from_env(threads: int | None = None) -> int:
    """An explicit count wins; else ``ML_THREADS``; else 1 (one inference thread per worker process)."""
    if threads:
        return max(1, int(threads))
    return max(1, int(os.environ.get("ML_THREADS") or DEFAULT_THREADS))


# --------------------------------------------------------------------------- engines


class KerasRuntime:
    """The Keras model, called through one traced ``tf.function`` (eager calls cost ~8x more)."""

    name = "keras"

    def __init__(self, path: Path, threads: int = DEFAULT_THREADS):
        # TensorFlow sizes its thread pools once, when it starts. A process started with
        # TF_NUM_INTRAOP_THREADS (the CLI sets it from --threads) keeps what it was given.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if os.environ.get("TF_NUM_INTRAOP_THREADS"):
            threads = int(os.environ["TF_NUM_INTRAOP_THREADS"])
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
        import keras
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["TF_NUM_INTEROP_THREADS"]))
        except RuntimeError:  # already started in this process (tests, training): keep its pools
            pass
        self.path = Path(path)
        self.threads = threads
        self.model = keras.saving.load_model(self.path, compile=False)
        model = self.model
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self._call(np.asarray(batch, dtype=np.float32))
        return split_outputs(outputs)


def split_outputs(outputs) -> tuple[np.ndarray, np.ndarray | None]:
    """A Keras model's outputs as ``(logits, embedding)``, whatever container it returns."""
    if isinstance(outputs, dict):
        logits, embedding = outputs["logits"], outputs.get("embedding")
    elif isinstance(outputs, (list, tuple)):
        logits = outputs[0]
        embedding = outputs[1] if len(outputs) > 1 else None
    else:
        logits, embedding = outputs, None
    return np.asarray(logits), None if embedding is None else np.asarray(embedding)


class LiteRTRuntime:
    """One LiteRT interpreter (per process; it is not thread-safe), TensorFlow-free.

    The converter names the outputs of a Keras model's signature ``output_0, output_1, ...`` in the
    model's output order (logits first, then embedding); ``outputs`` (from the export's metadata)
    says so explicitly, and the shapes are checked against ``n_classes`` when the engine starts.
    """

    name = "litert"

    def __init__(self, path: Path, n_classes: int, threads: int = DEFAULT_THREADS,
                 outputs: Mapping[str, str] | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.threads = threads
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        # signature name -> tensor index (a SignatureRunner would pin the tensors and forbid resizing)
        signature = next(iter(self.interpreter._get_full_signature_list().values()))
        ins, outs = signature["inputs"], signature["outputs"]
        if len(ins) != 1:
            raise ValueError(f"{self.path.name}: expected one image input, found {sorted(ins)}")
        self.input_index = next(iter(ins.values()))
        names = dict(outputs or {})
        names.setdefault("logits", "output_0")
        if len(outs) > 1:
            names.setdefault("embedding", "output_1")
        self.logits_index = outs[names["logits"]]
        self.embedding_index = outs[names["embedding"]] if "embedding" in names else None
        self.batch_size = 0
        self._resize(1)
        logits_shape = self.interpreter.get_tensor(self.logits_index).shape
        if logits_shape[-1] != n_classes:
            raise ValueError(f"{self.path.name}: output {names['logits']!r} has shape {tuple(logits_shape)}, "
                             f"not (batch, {n_classes}) logits")

    def _resize(self, n: int) -> None:
        if n != self.batch_size:
            shape = list(self.interpreter.get_input_details()[0]["shape"])
            self.interpreter.resize_tensor_input(self.input_index, [n] + shape[1:])
            self.interpreter.allocate_tensors()
            self.batch_size = n

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._resize(len(batch))
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self.logits_index).copy()
        embedding = None if self.embedding_index is None else self.interpreter.get_tensor(self.embedding_index).copy()
        return logits, embedding


def load_runtime(directory: Path, metadata: Mapping, requested: str | None = "auto",
                 threads: int | None = None):
    """Build the engine the artifact (or ``requested``) names; returns it with its file name."""
    engine, file = resolve_runtime(metadata, requested)
    path = Path(directory) / file
    if not path.is_file():
        from .artifact import ArtifactError

        raise ArtifactError(f"model file {file} is missing from {directory}")
    threads = threads_from_env(threads)
    if engine == "keras":
        return KerasRuntime(path, threads)
    outputs = None
    for v in ((metadata.get("tflite") or {}).get("variants") or {}).values():
        if v.get("file") == file:
            outputs = v.get("outputs")
    return LiteRTRuntime(path, len(metadata["classes"]), threads, outputs)
