"""Whole-network fine-tuning: every layer of the backbone trains, on views augmented on the fly.

The cached-activation recipe (``ml.training.finetune_tail``) trained only the last stages on a
few fixed views with ImageNet's BatchNorm statistics, and fitted the Vienna dermatoscope. Here
each epoch draws the training photos again with class-balancing weights, gives each one a new
random view (``ml.augmentation``), and trains the whole network with a warm-up then a cosine
decay of the learning rate. BatchNorm either follows the skin photos' statistics (``train``)
or keeps ImageNet's (``frozen``). With ``ema`` > 0 the optimizer also keeps an exponential
moving average of the trainable weights, and validation, the best epoch and the artifact use the
averaged weights: they smooth the epoch-to-epoch swings of small noisy batches.

A run spans working sessions: after every epoch the weights, the optimizer's state and the
curves go to ``checkpoint_dir`` (atomically), and ``resume=True`` goes on after the last
finished epoch with the same recipe (it refuses another one). The view of a photo depends only
on (seed, epoch, position), so a resumed run draws what an uninterrupted one would have drawn.
The best epoch by validation balanced accuracy is kept beside the last one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from .augmentation import strong_view
from .data import load_training_image
from .preprocessing import normalize, prepare_batch
from .training import HISTORY_KEYS, empty_history

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LAST_FILE = "last.npz"
BEST_FILE = "best.npz"
BATCHNORM_MODES = ("train", "frozen")
PRECISIONS = ("float32", "bfloat16")
SAMPLING_STRATA = ("class", "source_class")


class CheckpointError(Exception):
    """The checkpoint folder belongs to another recipe, or is incomplete."""


@dataclass(frozen=True)
class Recipe:
    """Everything that shapes the run; a resumed run must use the same one."""

    arch: str = "efficientnet_lite0"
    input_size: int = 192
    preprocessing: str = "efficientnet_lite+sog6"
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-5
    dropout: float = 0.3
    label_smoothing: float = 0.0
    batchnorm: str = "train"
    precision: str = "float32"
    #: per-photo sampling weight n_class ** -sampling_power, loss weight n_class ** -loss_power:
    #: together (0.5 + 0.5) every class counts the same, without showing the 13 training
    #: dermatofibromas of DermNet as often as the 4,700 nevi.
    sampling_power: float = 0.5
    #: what the sampling weight counts: "class" (n_class) or "source_class" (n of the class within
    #: the photo's source), so that 240 clinical melanomas are not drawn as rarely as their share of
    #: all 1,100 melanomas would have them
    sampling_strata: str = "class"
    loss_power: float = 0.5
    photos_per_epoch: int = 0  # 0: as many draws as training photos
    seed: int = 0
    #: the artifact (version@sha256) whose weights the run starts from; "" for ImageNet's
    init_from: str = ""
    #: momentum of the moving average of the weights that is validated and shipped; 0: off
    ema: float = 0.0

    def __post_init__(self):
        if self.batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        if self.sampling_strata not in SAMPLING_STRATA:
            raise ValueError(f"sampling_strata must be one of {SAMPLING_STRATA}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError("ema must be in [0, 1)")


def class_power_weights(y: np.ndarray, n_classes: int, power: float) -> np.ndarray:
    """n_c ** -power per class, scaled so that a photo's mean weight is 1."""
    counts = np.maximum(np.bincount(y, minlength=n_classes).astype(np.float64), 1.0)
    w = counts ** -float(power)
    return w * len(y) / float(np.sum(w[y]))


def sampling_strata(labels: Sequence[str], sources: Sequence[str], mode: str) -> np.ndarray:
    """An integer per photo naming the stratum its sampling weight counts: its class, or its
    (source, class) pair."""
    keys = list(labels) if mode == "class" else [f"{s}/{c}" for s, c in zip(sources, labels)]
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def epoch_draws(y: np.ndarray, n_classes: int, recipe: Recipe, epoch: int,
                strata: np.ndarray | None = None) -> np.ndarray:
    """The training photos (indices) of one epoch, drawn with replacement by the weight of their
    stratum (``strata``, default the class): n_stratum ** -sampling_power."""
    if strata is None:
        per_photo = class_power_weights(y, n_classes, recipe.sampling_power)[y]
    else:
        per_photo = class_power_weights(strata, int(strata.max()) + 1, recipe.sampling_power)[strata]
    n = recipe.photos_per_epoch or len(y)
    rng = np.random.default_rng([recipe.seed, epoch])
    return rng.choice(len(y), size=n, replace=True, p=per_photo / per_photo.sum())


def view_batch(images: Sequence, recipe: Recipe, epoch: int, start: int) -> np.ndarray:
    """Augmented, normalised views of ``images`` (draws ``start``.. of ``epoch``)."""
    size = (recipe.input_size, recipe.input_size)
    pixels = np.stack([
        strong_view(img, random.Random(f"{recipe.seed}:{epoch}:{start + i}"), size)
        for i, img in enumerate(images)
    ])
    return normalize(pixels, recipe.preprocessing)


def decode_photos(samples, input_size: int) -> list:
    """Every photo decoded once (watermark cropped) and kept in memory: a few hundred MB."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda s: load_training_image(s, (input_size, input_size)), samples))


def build_model(backbone_model, n_classes: int, recipe: Recipe):
    """Backbone + dropout + linear logits; the head is one Keras model named ``head`` so that the
    serving model, the export and ``--init-from`` see the same structure as before."""
    import keras
    from keras import layers

    dim = backbone_model.output_shape[-1]
    inputs = keras.Input((dim,), name="embedding")
    x = layers.Dropout(recipe.dropout, seed=recipe.seed, name="head_dropout")(inputs)
    logits = layers.Dense(n_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=recipe.seed),
                          name="head_logits", dtype="float32")(x)
    head = keras.Model(inputs, logits, name="head")
    if recipe.batchnorm == "frozen":
        for layer in backbone_model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # Keras 3: a frozen BN layer also runs in inference mode
    image = keras.Input(backbone_model.input_shape[1:], name="image")
    return keras.Model(image, head(backbone_model(image)), name="trainer"), head


def make_optimizer(recipe: Recipe, steps_per_epoch: int):
    import keras

    warmup = max(1, int(round(recipe.warmup_epochs * steps_per_epoch)))
    total = max(warmup + 1, recipe.epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total - warmup, warmup_target=recipe.lr, warmup_steps=warmup
    )
    # Keras keeps the average among the optimizer's variables, so the checkpoint carries it
    return keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay, use_ema=recipe.ema > 0,
                                  ema_momentum=recipe.ema or 0.99)


def averaged_weights(model, optimizer) -> list[np.ndarray]:
    """The model's weights with the optimizer's moving average in place of the trainable ones
    (the model itself is left as it is); the plain weights when the recipe keeps no average."""
    current = model.get_weights()
    if not optimizer.use_ema:
        return current
    plain = [np.asarray(v) for v in model.trainable_variables]
    for variable, average in zip(model.trainable_variables, optimizer._model_variables_moving_average):
        variable.assign(average)
    try:
        return model.get_weights()
    finally:
        for variable, value in zip(model.trainable_variables, plain):
            variable.assign(value)


# --------------------------------------------------------------------------- checkpoints

def _save_npz(path: Path, arrays: list[np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, *arrays)
    os.replace(tmp, path)


def _load_npz(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def save_checkpoint(directory: Path, model, optimizer, state: dict, best_weights: list[np.ndarray] | None) -> None:
    """The training state to go on from (``last``), and ``best_weights`` (the validated ones)
    when this epoch is the best so far."""
    directory.mkdir(parents=True, exist_ok=True)
    _save_npz(directory / LAST_FILE, model.get_weights() + [np.asarray(v) for v in optimizer.variables])
    if best_weights is not None:
        _save_npz(directory / BEST_FILE, best_weights)
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, directory / STATE_FILE)


def read_state(directory: Path, recipe: Recipe) -> dict | None:
    """The state of an earlier run of this recipe in ``directory``, or None when there is none."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    theirs = state.get("recipe", {})
    # a field newer than the checkpoint counts as its default (runs from before it had none)
    differs = {f.name: (theirs.get(f.name, f.default), getattr(recipe, f.name)) for f in fields(recipe)
               if f.name != "epochs" and theirs.get(f.name, f.default) != getattr(recipe, f.name)}
    if differs:
        raise CheckpointError(f"{directory} holds a run of another recipe (theirs, ours): {differs}")
    if not (directory / LAST_FILE).is_file():
        raise CheckpointError(f"{directory}/{LAST_FILE} is missing")
    return state


def restore(directory: Path, model, optimizer) -> None:
    arrays = _load_npz(directory / LAST_FILE)
    n = len(model.get_weights())
    model.set_weights(arrays[:n])
    optimizer.build(model.trainable_variables)
    if len(arrays) - n != len(optimizer.variables):
        raise CheckpointError(f"{directory}/{LAST_FILE}: optimizer state does not fit this model")
    for variable, value in zip(optimizer.variables, arrays[n:]):
        variable.assign(value)


def load_best_weights(directory: Path) -> list[np.ndarray]:
    return _load_npz(Path(directory) / BEST_FILE)


# --------------------------------------------------------------------------- the loop

def make_train_step(model, optimizer, loss_weights: np.ndarray, n_classes: int, smoothing: float):
    """One optimizer step on a batch: class-weighted (optionally smoothed) cross-entropy."""
    import tensorflow as tf

    weights = tf.constant(loss_weights, tf.float32)

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            onehot = tf.one_hot(y, n_classes) * (1.0 - smoothing) + smoothing / n_classes
            per_photo = tf.nn.softmax_cross_entropy_with_logits(onehot, logits)
            w = tf.gather(weights, y)
            loss = tf.reduce_sum(per_photo * w) / tf.reduce_sum(w)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.float32))

    return train_step


def make_validator(model, val_images: Sequence, y_val: np.ndarray, recipe: Recipe):
    """(weights) -> (balanced accuracy, loss, accuracy) of those weights on the clean validation
    photos; the model gets its own weights back afterwards."""
    import tensorflow as tf

    from .metrics import balanced_accuracy

    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    size = (recipe.input_size, recipe.input_size)

    def validate(weights):
        own = model.get_weights()
        model.set_weights(weights)
        try:
            return score()
        finally:
            model.set_weights(own)

    def score():
        logits = np.concatenate([
            np.asarray(forward(tf.constant(prepare_batch(val_images[i : i + 128], size, recipe.preprocessing))), np.float32)
            for i in range(0, len(val_images), 128)
        ])
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return (balanced_accuracy(y_val, logits.argmax(1)), float(-np.mean(np.log(p[np.arange(len(y_val)), y_val] + 1e-12))),
                float(np.mean(logits.argmax(1) == y_val)))

    return validate


def run_epoch(train_step, pool, train_images: Sequence, y_train: np.ndarray, n_classes: int, recipe: Recipe,
              epoch: int, strata: np.ndarray | None = None) -> tuple[float, float, int]:
    """One epoch of draws, the next batch augmented in ``pool`` while this one trains.
    Returns (mean loss, mean accuracy, photos drawn)."""
    import tensorflow as tf

    draws = epoch_draws(y_train, n_classes, recipe, epoch, strata)
    starts = list(range(0, len(draws), recipe.batch_size))

    def load(start):
        idx = draws[start : start + recipe.batch_size]
        return view_batch([train_images[i] for i in idx], recipe, epoch, start), y_train[idx].astype(np.int32)

    losses, accs = [], []
    future = pool.submit(load, starts[0])
    for b in range(len(starts)):
        x, y = future.result()
        if b + 1 < len(starts):
            future = pool.submit(load, starts[b + 1])
        loss, acc = train_step(tf.constant(x), tf.constant(y))
        losses.append(float(loss))
        accs.append(float(acc))
    return float(np.mean(losses)), float(np.mean(accs)), len(draws)


def train(
    backbone_model,
    train_images: Sequence,
    y_train: np.ndarray,
    val_images: Sequence,
    y_val: np.ndarray,
    n_classes: int,
    recipe: Recipe,
    checkpoint_dir: str | Path,
    resume: bool = False,
    max_epochs_now: int | None = None,
    initial_head: list[np.ndarray] | None = None,
    strata: np.ndarray | None = None,
):
    """Train (or go on training) the whole network. Returns (model, head, state).

    ``state`` holds the curves (``history``), the best epoch and whether the recipe's epochs are
    all done (``finished``). ``max_epochs_now`` stops after that many epochs in this call (a
    session's time), leaving a checkpoint to resume from. The returned model carries the best
    epoch's weights. ``initial_head`` (the head's weights) starts a fresh run from a trained
    artifact, whose backbone weights ``backbone_model`` already carries (``--init-from``).
    ``strata`` (one integer per training photo, ``sampling_strata``) is what the draws balance
    when the recipe samples by source and class.
    """
    import keras

    checkpoint_dir = Path(checkpoint_dir)
    state = read_state(checkpoint_dir, recipe) if resume else None
    if not resume and (checkpoint_dir / STATE_FILE).is_file():
        raise CheckpointError(f"{checkpoint_dir} already holds a run: pass resume, or use another folder")
    keras.utils.set_random_seed(recipe.seed)
    model, head = build_model(backbone_model, n_classes, recipe)
    optimizer = make_optimizer(recipe, int(np.ceil((recipe.photos_per_epoch or len(y_train)) / recipe.batch_size)))
    train_step = make_train_step(model, optimizer, class_power_weights(y_train, n_classes, recipe.loss_power),
                                 n_classes, float(recipe.label_smoothing))
    validate = make_validator(model, val_images, y_val, recipe)
    if state is None:
        state = {"recipe": asdict(recipe), "epochs_done": 0, "history": empty_history(), "best_epoch": 0,
                 "best_score": -1.0, "epoch_seconds": [], "photos_per_second": []}
        if initial_head is not None:
            head.set_weights(initial_head)
    else:
        restore(checkpoint_dir, model, optimizer)
        log.info("resumed %s after epoch %d (best %.4f at epoch %d)", checkpoint_dir, state["epochs_done"],
                 state["best_score"], state["best_epoch"])
    state["recipe"]["epochs"] = recipe.epochs  # more epochs may be asked of a resumed run
    done_now = 0
    with ThreadPoolExecutor(max_workers=1) as pool:  # augment the next batch while the CPU trains
        for epoch in range(state["epochs_done"] + 1, recipe.epochs + 1):
            if max_epochs_now is not None and done_now >= max_epochs_now:
                break
            t0 = time.time()
            loss, acc, drawn = run_epoch(train_step, pool, train_images, y_train, n_classes, recipe, epoch, strata)
            train_s = time.time() - t0
            served = averaged_weights(model, optimizer)
            bal, vloss, vacc = validate(served)
            h = state["history"]
            for key, value in zip(HISTORY_KEYS, (loss, acc, vloss, vacc, bal)):
                h[key].append(value)
            state["epoch_seconds"].append(round(time.time() - t0, 1))
            state["photos_per_second"].append(round(drawn / train_s, 1))
            state["epochs_done"] = epoch
            improved = bal > state["best_score"]
            if improved:
                state["best_score"], state["best_epoch"] = bal, epoch
            state["finished"] = epoch >= recipe.epochs
            save_checkpoint(checkpoint_dir, model, optimizer, state, served if improved else None)
            done_now += 1
            log.info("epoch %d/%d: loss %.4f val_loss %.4f val_bal_acc %.4f (%.0f s, %.1f photos/s)%s", epoch,
                     recipe.epochs, loss, vloss, bal, state["epoch_seconds"][-1],
                     state["photos_per_second"][-1], " best" if improved else "")
    state["finished"] = state["epochs_done"] >= recipe.epochs
    if (checkpoint_dir / BEST_FILE).is_file():
        model.set_weights(load_best_weights(checkpoint_dir))
    return model, head, state
