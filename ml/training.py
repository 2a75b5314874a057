"""Training: cached frozen-backbone features -> small head -> calibration -> gate -> artifact."""

from __future__ import annotations

import datetime
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .features import extract, manifest_for, open_cache

log = logging.getLogger(__name__)

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy")


def empty_history() -> dict[str, list[float]]:
    """Per-epoch curves, in the layout ``plot_history`` and the metadata expect."""
    return {key: [] for key in HISTORY_KEYS}


def feature_jobs(views: int) -> list[tuple[str, int]]:
    """Clean views of every split first (enough for a first model), then the augmented views."""
    return [("val", 0), ("test", 0), ("train", 0)] + [("train", v) for v in range(1, views + 1)]


def extract_all(args, splits):
    from .architectures import build_backbone

    size = (args.input_size, args.input_size)
    backbone = build_backbone(args.arch, size, args.weights)
    tap = None if args.no_tap else (getattr(args, "tap_layer", None) or backbone.tap_layer)
    tap_only = bool(getattr(args, "tap_only", False))
    manifest = manifest_for(splits, args.arch, args.weights, size, backbone.preprocessing, args.seed, tap)
    if tap_only:
        manifest["tap_only"] = True
    cache = open_cache(args.cache, manifest)
    started = time.time()
    timings = extract(
        cache, feature_jobs(args.views), splits, backbone.model, size, backbone.preprocessing, args.seed,
        tap_layer=tap, batch_size=args.batch_size, tap_only=tap_only,
    )
    log.info("feature extraction: %s (wall %.0f s)", timings, time.time() - started)
    return backbone, cache, timings


# --------------------------------------------------------------------------- training on the cache

def class_codes(other_mode: str) -> list[str]:
    from .data import known_codes

    return known_codes(include_other=(other_mode == "class"))


def encode_labels(samples, codes: list[str]) -> np.ndarray:
    """Class index per sample; -1 for photos whose label is not a class of this model
    (DermNet "other" photos when the model relies on abstention instead)."""
    index = {c: i for i, c in enumerate(codes)}
    return np.array([index.get(s.label, -1) for s in samples], dtype=np.int64)


def balanced_class_weights(y: np.ndarray, n_classes: int, power: float = 1.0) -> dict[int, float]:
    """(n / (C * n_c)) ** power: with power 1 every class contributes equally to the loss
    (nevus is 2/3 of HAM); 0.5 is a softer correction that trusts the 13 training photos
    of DermNet dermatofibroma less."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weights = (len(y) / (n_classes * np.maximum(counts, 1.0))) ** power
    weights *= len(y) / float(np.sum(weights[y]))  # mean weight per photo stays 1
    return {i: float(w) for i, w in enumerate(weights)}


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    epochs: int = 40,
    hidden: int = 512,
    dropout: float = 0.5,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    patience: int = 8,
    progress: bool = True,
    class_weight_power: float = 1.0,
):
    """Fit the head; keep the epoch with the best validation balanced accuracy."""
    import keras

    from .architectures import build_head
    from .metrics import balanced_accuracy

    keras.utils.set_random_seed(seed)
    head = build_head(
        x_train.shape[1], n_classes, hidden=hidden, dropout=dropout, seed=seed,
        mean=x_train.mean(axis=0), variance=x_train.var(axis=0),
    )
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1))
    head.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = empty_history()
    best = {"score": -1.0, "epoch": -1, "weights": None}

    class Track(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logits = head.predict(x_val, batch_size=2048, verbose=0)
            score = balanced_accuracy(y_val, logits.argmax(axis=1))
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                history[key].append(float(logs.get(key, np.nan)))
            history["val_balanced_accuracy"].append(score)
            if score > best["score"]:
                best.update(score=score, epoch=epoch, weights=head.get_weights())
            log.info("epoch %d: loss %.4f val_loss %.4f val_bal_acc %.4f", epoch + 1, logs.get("loss"), logs.get("val_loss"), score)
            if epoch - best["epoch"] >= patience:
                self.model.stop_training = True

    head.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=batch_size,
        class_weight=balanced_class_weights(y_train, n_classes, class_weight_power),
        shuffle=True,
        verbose=0,
        callbacks=[Track()],
    )
    head.set_weights(best["weights"])
    return head, history, best["epoch"] + 1


def finetune_tail(
    backbone,
    tap_layer: str,
    head,
    taps_train: list[np.ndarray],
    y_train: np.ndarray,
    tap_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    epochs: int,
    lr: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
    patience: int = 3,
    class_weight_power: float = 1.0,
    train_batchnorm: bool = False,
):
    """Fine-tune the backbone after the cached tap layer (EfficientNet-Lite0: stage 7 and
    the 1x1 head convolution) together with the classifier head.

    Each epoch shows every training photo once, in one of its cached views picked at
    random, so the augmentation still varies between epochs. By default the BatchNorm
    layers stay in inference mode with their ImageNet statistics; ``train_batchnorm``
    lets them learn their scale and offset and follow the statistics of skin photos
    (dermoscopy is far from ImageNet), which batches of 128 estimate well enough.
    Keeps the best epoch by validation balanced accuracy. Returns (back, history, best epoch).
    """
    import keras

    from .backbones.efficientnet_lite import split_at
    from .metrics import balanced_accuracy

    keras.utils.set_random_seed(seed)
    _, back = split_at(backbone.model, tap_layer)
    for layer in back.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = train_batchnorm
    inputs = keras.Input(back.input_shape[1:], name="tap")
    model = keras.Model(inputs, head(back(inputs)))
    model.compile(
        # one epoch of warm-up: the head is already trained and a full-size first step would undo it
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(
                0.0,
                decay_steps=max(1, (epochs - 1) * int(np.ceil(len(y_train) / batch_size))),
                warmup_target=lr,
                warmup_steps=int(np.ceil(len(y_train) / batch_size)),
            )
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    weights = balanced_class_weights(y_train, n_classes, class_weight_power)
    sample_weight = np.array([weights[int(c)] for c in y_train], dtype=np.float32)
    rng = np.random.default_rng(seed)
    history = empty_history()
    x_val = tap_val.astype(np.float32)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def score():
        logits = model.predict(x_val, batch_size=256, verbose=0)
        return balanced_accuracy(y_val, logits.argmax(1)), float(loss_fn(y_val, logits)), float(np.mean(logits.argmax(1) == y_val))

    best_score, _, _ = score()
    best = {"score": best_score, "epoch": 0, "weights": model.get_weights()}
    log.info("fine-tune start: val balanced accuracy %.4f", best_score)
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        pick = rng.integers(0, len(taps_train), len(y_train))
        order = rng.permutation(len(y_train))
        x = np.empty((len(y_train),) + taps_train[0].shape[1:], dtype=np.float32)
        for v in range(len(taps_train)):  # x[j] = view pick[order[j]] of photo order[j]
            positions = np.flatnonzero(pick[order] == v)
            x[positions] = taps_train[v][order[positions]]
        fit = model.fit(x, y_train[order], sample_weight=sample_weight[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        del x
        bal, vloss, vacc = score()
        history["loss"].append(float(fit.history["loss"][0]))
        history["accuracy"].append(float(fit.history["accuracy"][0]))
        history["val_loss"].append(vloss)
        history["val_accuracy"].append(vacc)
        history["val_balanced_accuracy"].append(bal)
        log.info("fine-tune epoch %d: loss %.4f val_loss %.4f val_bal_acc %.4f (%.0f s)", epoch, history["loss"][-1], vloss, bal, time.time() - t0)
        if bal > best["score"]:
            best.update(score=bal, epoch=epoch, weights=model.get_weights())
        if epoch - best["epoch"] >= patience:
            break
    model.set_weights(best["weights"])
    return back, history, best["epoch"]


def warm_start(directory, codes: list[str]):
    """Backbone and head of a trained artifact, to go on fine-tuning where it stopped.

    Its classes must be this run's; its preprocessing and architecture come with it. Returns
    (backbone, head, {"version", "sha256"}) so the new artifact names what it started from.
    """
    import keras

    from .architectures import Backbone
    from .artifact import read_metadata

    directory = Path(directory)
    meta = read_metadata(directory)
    theirs = [c["code"] for c in meta["classes"]]
    if theirs != codes:
        raise SystemExit(f"{directory}: its classes {theirs} are not this run's {codes}")
    serving = keras.saving.load_model(directory / meta["model_file"], compile=False)
    head = serving.get_layer("head")
    model = next(layer for layer in serving.layers if isinstance(layer, keras.Model) and layer is not head)
    backbone = Backbone(model, meta["preprocessing"], meta["architecture"], meta.get("backbone_weights"))
    return backbone, head, {"version": meta["version"], "sha256": meta["files"][meta["model_file"]]}


def _select(samples, mask):
    return [s for s, keep in zip(samples, mask) if keep]


def run_training(args, splits) -> dict:
    """The cached recipe behind ``python -m ml train``: frozen features, a head, optionally the
    last stages fine-tuned on cached activations, then ``finish_artifact``."""
    from .features import available_views, load_features

    wall = {"started": time.time()}
    if getattr(args, "max_per_split", None):
        splits = {k: v[: args.max_per_split] for k, v in splits.items()}
    codes = class_codes(args.other)
    n_classes = len(codes)
    y = {k: encode_labels(v, codes) for k, v in splits.items()}
    train_known = y["train"] >= 0
    val_known = y["val"] >= 0
    init_from = getattr(args, "init_from", None)

    if init_from:
        # Go on from a trained artifact: its head and fine-tuned tail are the start, so neither
        # the frozen-feature cache nor a new head is needed, only the tap cache.
        if not (getattr(args, "tap_cache", None) and args.finetune_epochs > 0):
            raise SystemExit("--init-from continues the fine-tuning: give --tap-cache and --finetune-epochs")
        backbone, head, start = warm_start(init_from, codes)
        views = [v for v in available_views(args.tap_cache, "train", len(splits["train"])) if v <= args.views]
        emb, history, best_epoch = {}, empty_history(), 0
        wall["extraction_s"] = 0.0
    else:
        start = None
        backbone, cache, extraction = extract_all(args, splits)
        wall["extraction_s"] = extraction["seconds"]
        views = [v for v in available_views(cache, "train", len(splits["train"])) if v <= args.views]
        emb = {k: load_features(cache, k, 0, len(v)) for k, v in splits.items()}
        x_train = np.concatenate([load_features(cache, "train", v, len(splits["train"]))[train_known] for v in views])
        y_train = np.tile(y["train"][train_known], len(views))
        t0 = time.time()
        head, history, best_epoch = train_head(
            x_train, y_train, emb["val"][val_known], y["val"][val_known], n_classes,
            epochs=args.epochs, hidden=args.hidden, dropout=args.dropout, lr=args.lr, seed=args.seed,
            class_weight_power=args.class_weight_power,
        )
        wall["head_training_s"] = round(time.time() - t0, 1)
        del x_train
    log.info("training on views %s of %d training photos", views, len(splits["train"]))

    finetune = None
    tap_cache, tap_layer = (None, None) if init_from else (cache, backbone.tap_layer)
    if getattr(args, "tap_cache", None):
        # activations of an earlier layer, cached by ``extract --tap-layer L --tap-only``
        tap_cache, tap_layer = args.tap_cache, json.loads((args.tap_cache / "manifest.json").read_text())["tap"]
    if args.finetune_epochs > 0 and tap_layer and not args.no_tap:
        t0 = time.time()
        ft_views = views[: args.finetune_views] if args.finetune_views else views
        train_batchnorm = bool(getattr(args, "finetune_batchnorm", False))
        taps = [load_features(tap_cache, "train", v, len(splits["train"]), key="tap")[train_known] for v in ft_views]
        tap_val = load_features(tap_cache, "val", 0, len(splits["val"]), key="tap")
        back, ft_history, ft_best = finetune_tail(
            backbone, tap_layer, head, taps, y["train"][train_known], tap_val[val_known], y["val"][val_known], n_classes,
            epochs=args.finetune_epochs, lr=args.finetune_lr, seed=args.seed,
            class_weight_power=args.class_weight_power, patience=args.finetune_patience,
            train_batchnorm=train_batchnorm,
        )
        del taps
        # the tail changed, so every embedding (gate, logits) is recomputed from the taps
        emb["val"] = back.predict(tap_val.astype(np.float32), batch_size=256, verbose=0)
        for k in ("train", "test"):
            emb[k] = back.predict(load_features(tap_cache, k, 0, len(splits[k]), key="tap").astype(np.float32), batch_size=256, verbose=0)
        wall["finetune_s"] = round(time.time() - t0, 1)
        finetune = {"epochs_run": len(ft_history["loss"]), "best_epoch": ft_best, "lr": args.finetune_lr,
                    "views": ft_views, "trained_from": tap_layer, "patience": args.finetune_patience, "history": ft_history,
                    "batchnorm": "trained" if train_batchnorm else "frozen",
                    "init_from": start}
        history["finetune_from_epoch"] = len(history["loss"])
        for key in ft_history:
            history[key] += ft_history[key]

    training = {
        "recipe": "cached",
        "seed": args.seed,
        "views": views,
        "epochs_run": len(history["loss"]),
        "best_epoch": best_epoch,
        "hidden": args.hidden,
        "dropout": args.dropout,
        "lr": args.lr,
        "class_weights": f"balanced ** {args.class_weight_power}",
        "finetune": finetune,
    }
    return finish_artifact(args, splits, codes, backbone, head, emb, history, training, wall)


def recipe_from_args(args):
    from .preprocessing import with_colour_constancy
    from .whole_network import Recipe

    from .architectures import preprocessing_of

    return Recipe(
        arch=args.arch, input_size=args.input_size,
        preprocessing=with_colour_constancy(preprocessing_of(args.arch), args.colour_constancy),
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay, dropout=args.dropout, label_smoothing=args.label_smoothing,
        batchnorm=args.batchnorm, precision=args.precision, sampling_power=args.sampling_power,
        loss_power=args.loss_power, sampling_strata=getattr(args, "sampling_strata", "class"), photos_per_epoch=args.photos_per_epoch,
        seed=args.seed if getattr(args, "train_seed", None) is None else args.train_seed,
        ema=args.ema,
    )


def build_backbone_for(recipe, weights):
    """The backbone a recipe trains, in its precision (bf16 compute, float32 weights)."""
    import keras

    from .architectures import build_backbone

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if recipe.precision == "bfloat16" else "float32")
    try:
        backbone = build_backbone(recipe.arch, (recipe.input_size, recipe.input_size), weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return replace(backbone, preprocessing=recipe.preprocessing)


def run_whole_network(args, splits) -> dict | None:
    """``python -m ml train --recipe whole``: train every layer (resumable), then the same
    calibration, gate and artifact as the cached recipe. Returns None when the run stopped
    before its last epoch (``--epochs-now``) and ``--finish-now`` was not given."""
    from . import whole_network as wn

    wall = {"started": time.time()}
    if getattr(args, "max_per_split", None):
        splits = {k: v[: args.max_per_split] for k, v in splits.items()}
    codes = class_codes(args.other)
    recipe, start_backbone, start_head = recipe_from_args(args), None, None
    if getattr(args, "init_from", None):
        # A second cycle from a trained whole-network artifact: its backbone and head are the
        # start, a new warm-up and cosine decay the schedule (the optimizer starts afresh).
        start_backbone, head, start = warm_start(args.init_from, codes)
        if start_backbone.preprocessing != recipe.preprocessing or start_backbone.arch != recipe.arch:
            raise SystemExit(f"--init-from {args.init_from}: its {start_backbone.arch} / {start_backbone.preprocessing} "
                             f"is not this run's {recipe.arch} / {recipe.preprocessing}")
        start_head = head.get_weights()
        recipe = replace(recipe, init_from=f"{start['version']}@{start['sha256']}")
    y = {k: encode_labels(v, codes) for k, v in splits.items()}
    keep = {k: y[k] >= 0 for k in splits}
    checkpoint = args.checkpoint or (args.runs / (args.version or args.out.name) / "checkpoint")
    t0 = time.time()
    train_samples = _select(splits["train"], keep["train"])
    strata = None if recipe.sampling_strata == "class" else wn.sampling_strata(
        [s.label for s in train_samples], [s.source for s in train_samples], recipe.sampling_strata)
    train_images = wn.decode_photos(train_samples, recipe.input_size)
    val_images = wn.decode_photos(_select(splits["val"], keep["val"]), recipe.input_size)
    wall["decode_s"] = round(time.time() - t0, 1)
    import keras

    keras.utils.set_random_seed(recipe.seed)  # the same start for the same recipe
    backbone = build_backbone_for(recipe, None if start_head else args.weights)
    if start_head:
        backbone.model.set_weights(start_backbone.model.get_weights())
    t0 = time.time()
    model, head, state = wn.train(
        backbone.model, train_images, y["train"][keep["train"]], val_images, y["val"][keep["val"]], len(codes),
        recipe, checkpoint, resume=args.resume, initial_head=start_head, strata=strata,
        # --finish-now alone trains no further: the artifact comes from the best epoch so far
        max_epochs_now=0 if args.finish_now and args.epochs_now is None else args.epochs_now,
    )
    wall["training_s_this_call"] = round(time.time() - t0, 1)
    wall["training_s_all_calls"] = round(float(sum(state["epoch_seconds"])), 1)
    del train_images, val_images
    if not state["finished"] and not args.finish_now:
        log.info("stopped after epoch %d of %d; go on with the same command and --resume (checkpoint %s)",
                 state["epochs_done"], recipe.epochs, checkpoint)
        return None
    if recipe.precision != "float32":  # the artifact computes in float32, whatever trained it
        trained = model.get_weights()
        backbone = build_backbone_for(replace(recipe, precision="float32"), None)
        model, head = wn.build_model(backbone.model, len(codes), recipe)
        model.set_weights(trained)
    t0 = time.time()
    emb = embed_splits(backbone, splits, recipe)
    wall["embedding_s"] = round(time.time() - t0, 1)
    training = {
        "recipe": "whole",
        **{k: v for k, v in state["recipe"].items()},
        "epochs_run": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "best_val_balanced_accuracy": state["best_score"],
        "epoch_seconds": state["epoch_seconds"],
        "photos_per_second": state["photos_per_second"],
        "finished": state["finished"],
        "checkpoint": str(checkpoint),
    }
    return finish_artifact(args, splits, codes, backbone, head, emb, state["history"], training, wall)


def embed_splits(backbone, splits, recipe, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Clean-view embeddings of every split, through the serving decoder and ``prepare_batch``."""
    import tensorflow as tf

    from .features import training_batch

    forward = tf.function(lambda x: backbone.model(x, training=False), reduce_retracing=True)
    size = (recipe.input_size, recipe.input_size)
    out = {}
    for name, samples in splits.items():
        parts = [np.asarray(forward(tf.constant(training_batch(samples[i : i + batch_size], 0, recipe.seed, size, recipe.preprocessing))))
                 for i in range(0, len(samples), batch_size)]
        out[name] = np.concatenate(parts) if parts else np.zeros((0, backbone.model.output_shape[-1]), np.float32)
    return out


def finish_artifact(args, splits, codes, backbone, head, emb, history, training, wall,
                    serving=None, gate_columns: int | None = None) -> dict:
    """Everything after the network is trained, shared by both recipes and by soups and ensembles: temperature,
    the uncertainty threshold, the not-skin gate, metrics on the held-out splits, plots, and the
    artifact folder with its metadata. ``emb`` holds the clean-view embeddings per split;
    ``history`` the per-epoch curves (None for a combined artifact, which trained nothing). An ensemble
    (ml/ensemble.py) brings its own ``serving`` model and the ``gate_columns`` of ``emb`` that
    its served embedding is."""
    import keras

    from . import calibration
    from .architectures import build_serving_model
    from .artifact import write_artifact
    from .classes import label_for
    from .evaluation import abstention_report, evaluate_probabilities, gate_report, plot_confusion, plot_history
    from .gate import MahalanobisGate
    from .inference import softmax

    y = {k: encode_labels(v, codes) for k, v in splits.items()}
    val_known = y["val"] >= 0
    logits = {k: head.predict(emb[k], batch_size=2048, verbose=0) for k in splits}
    temperature = calibration.fit_temperature(logits["val"][val_known], y["val"][val_known])
    probs = {k: softmax(v, temperature) for k, v in logits.items()}
    raw_probs = {k: softmax(v, 1.0) for k, v in logits.items()}

    # Abstention: "other" photos (when not a class) count as wrong whatever the model says,
    # so the threshold learns to catch them too.
    val_conf = probs["val"].max(axis=1)
    val_correct = (probs["val"].argmax(axis=1) == y["val"]) & val_known
    min_confidence = calibration.choose_min_confidence(val_conf, val_correct, args.target_accuracy)

    # Gate: every training photo is skin, "other" conditions included.
    gate_labels = np.array([s.label for s in splits["train"]])
    gate_emb = {k: v[:, :gate_columns] for k, v in emb.items()} if gate_columns else emb
    gate = MahalanobisGate.fit(gate_emb["train"], gate_labels)
    pixel_std = {k: _pixel_std(splits[k], backbone.preprocessing, args) for k in ("val", "test")}
    # the budget holds for every source on its own: a clinic whose photos sit at the edge of the
    # embedding cloud must not lose its melanomas to the gate for the others' sake
    gate.calibrate(gate_emb["val"], pixel_std["val"], max_false_rejection=args.max_false_rejection,
                   groups=[s.source for s in splits["val"]])

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.keras", "gate.npz"):
        (out / stale).unlink(missing_ok=True)
    serving = serving or build_serving_model(backbone.model, head)
    serving.save(out / "model.keras")
    gate_config = gate.save(out)

    # Metrics from the cached features of the held-out splits (``python -m ml evaluate``
    # recomputes them from the image files through the exported model).
    metrics = {}
    for split in ("val", "test"):
        metrics[split] = evaluate_probabilities(probs[split], raw_probs[split], splits[split], codes)
        metrics[split]["abstention"] = abstention_report(probs[split], y[split], splits[split], codes, min_confidence)
        skin_ok = (gate.distance(gate_emb[split]) <= gate.threshold) & (pixel_std[split] >= gate.min_pixel_std)
        metrics[split]["gate_false_rejection"] = float(1.0 - skin_ok.mean())
        metrics[split]["gate_false_rejection_per_source"] = per_source_rate(~skin_ok, splits[split])
    nonskin = gate_report(serving, gate, backbone.preprocessing, (args.input_size, args.input_size))
    metrics["nonskin_gate"] = nonskin
    metrics["temperature"] = temperature

    version = args.version or out.name
    run_dir = args.runs / version
    run_dir.mkdir(parents=True, exist_ok=True)
    if history:  # a soup or an ensemble (ml/members.py) trained nothing itself
        plot_history(history, run_dir / "training_curves.png")
    plot_confusion(metrics["test"]["all"]["confusion_matrix"], metrics["test"]["all"]["codes"], run_dir / "confusion_test.png")
    wall["total_s"] = round(time.time() - wall.pop("started"), 1)

    from .data import summarise

    metadata = {
        "name": "skin-condition classifier",
        "version": version,
        "architecture": backbone.arch,
        "backbone_weights": str(backbone.weights),
        "classes": [{"code": c, "label": label_for(c)} for c in codes],
        "input_size": [args.input_size, args.input_size],
        "preprocessing": backbone.preprocessing,
        "model_file": "model.keras",
        "outputs": ["logits", "embedding"],
        "temperature": temperature,
        "thresholds": {
            "min_confidence": min_confidence,
            "target_accuracy_when_confident": args.target_accuracy,
        },
        "gate": {**gate_config, "max_false_rejection": args.max_false_rejection},
        "other_handling": args.other,
        "metrics": _round(metrics),
        "training": {**training, "wall_times_s": wall, "command": "python -m ml " + " ".join(sys.argv[1:])},
        "training_data": summarise(splits),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "licence": licence_for(splits),
    }
    metadata = write_artifact(out, metadata)
    if history:
        (run_dir / "history.json").write_text(json.dumps(history))
    (run_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    log.info("wrote %s (test: %s)", out, _headline(metrics["test"]))
    keras.backend.clear_session()
    return metadata


LICENCES = {
    "ham": "HAM10000 (CC BY-NC-SA 4.0)",
    "dermnet": "DermNet NZ (CC BY-NC-ND 3.0 NZ)",
    "derm7pt": "derm7pt (non-commercial research use)",
    "fitz17k": "Fitzpatrick17k (CC BY-NC-SA 3.0)",
}


def licence_for(splits) -> str:
    sources = sorted({s.source for v in splits.values() for s in v})
    names = [LICENCES.get(src, f"{src} (see its licence)") for src in sources]
    return "weights derived from " + ", ".join(names) + ": non-commercial use only"


def per_source_rate(flags: np.ndarray, samples) -> dict[str, float]:
    """Share of flagged photos per data source."""
    src = np.array([s.source for s in samples])
    return {name: float(np.mean(flags[src == name])) for name in sorted(set(src))}


def _pixel_std(samples, mode: str, args) -> np.ndarray:
    """Contrast of each clean photo as the gate sees it (serving preprocessing)."""
    from .features import training_batch
    from .gate import MahalanobisGate

    size = (args.input_size, args.input_size)
    parts = [MahalanobisGate.pixel_std(training_batch(samples[i : i + 128], 0, args.seed, size, mode)) for i in range(0, len(samples), 128)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _headline(m: dict) -> str:
    a, h = m["all"], m.get("ham7", {})
    return f"balanced acc all {a['balanced_accuracy']:.3f}, ham7 {h.get('balanced_accuracy', float('nan')):.3f}, ECE {a['ece']:.3f}"


def _round(obj, digits: int = 4):
    if isinstance(obj, float):
        return None if obj != obj else round(obj, digits)
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v, digits) for v in obj]
    if isinstance(obj, np.generic):
        return _round(obj.item(), digits)
    return obj
