"""Ensembles: several trained networks in one model whose logits are the mean of theirs.

Runs of one recipe with different seeds make different mistakes, so the mean of their logits is
better than each (measured: docs/MODEL_CARD.md), at the cost of one network pass per member and
photo, which the serving budget must hold. The members become one Keras model, so the LiteRT
export, test-time flips, thresholds and evaluation treat it like any artifact:

    image -> member 1 backbone -> e1 --+-> concatenate -> one linear head -> logits
          -> member 2 backbone -> e2 --+
    embedding = e1

With whole-network members each head is one linear layer (dropout is off when serving), so the
share-weighted mean of their logits is itself one linear layer on the concatenated embeddings:
kernel = [s1 W1; s2 W2], bias = s1 b1 + s2 b2. The embedding the not-skin gate and the lesion
timeline use stays member 1's: its features and thresholds are known, and a gate on the
concatenation would double the gate's size (its inverse covariance grows with the square).
"""

from __future__ import annotations

import numpy as np

from .members import MemberError


def linear_head_weights(head) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a whole-network head, which is dropout then one Dense layer."""
    import keras

    dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) != 1:
        raise MemberError("an ensemble needs members whose head is one linear layer (the whole-network recipe)")
    kernel, bias = dense[0].get_weights()
    return kernel, bias


def stacked_head(members: list[dict], shares: np.ndarray):
    """One Dense layer on the concatenated embeddings whose logits are the shares' mean of the
    members' logits."""
    import keras
    from keras import layers

    parts = [linear_head_weights(m["head"]) for m in members]
    kernel = np.concatenate([s * k for s, (k, _) in zip(shares, parts)], axis=0)
    bias = sum(s * b for s, (_, b) in zip(shares, parts))
    inputs = keras.Input((kernel.shape[0],), name="embeddings")
    dense = layers.Dense(kernel.shape[1], name="head_logits", dtype="float32")
    head = keras.Model(inputs, dense(inputs), name="head")
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return head


def stack(members: list[dict], shares: np.ndarray):
    """(backbone, head, extras) for ``members.run_combined``: the backbone's output is the
    concatenation that the head reads; the served model's embedding is member 1's."""
    from dataclasses import replace

    import keras
    from keras import layers

    first = members[0]["backbone"]
    image = keras.Input(first.model.input_shape[1:], name="image")
    embeddings = []
    for i, m in enumerate(members, start=1):
        model = m["backbone"].model
        model.name = f"member{i}_{model.name}"  # two copies of one architecture need two names
        embeddings.append(model(image))
    joined = layers.Concatenate(name="embeddings")(embeddings)
    head = stacked_head(members, shares)
    backbone = replace(first, model=keras.Model(image, joined, name="ensemble_backbone"))
    logits = layers.Identity(name="logits")(head(joined))
    serving = keras.Model(image, [logits, layers.Identity(name="embedding")(embeddings[0])], name="skin_classifier")
    width = first.model.output_shape[-1]
    return backbone, head, {"serving": serving, "gate_columns": width}
