"""Training data: loaders, leak-free splits, watermark removal and augmentation.

Two layouts are understood:

* HAM10000 (``--ham DIR``): ``DIR/HAM10000_metadata.csv`` plus ``DIR/images/<image_id>.jpg``.
  Several photos show the same lesion, so HAM is split by ``lesion_id``.
* fitz17k (``--fitz17k DIR``): clinical photos with the Fitzpatrick skin type, split by
  near-duplicate group (``ml.near_duplicates``).
* A CSV of ``path,label`` rows (``--csv FILE``), paths relative to the CSV's folder.
  DermNet's ``labels.csv`` is this layout with ``--label-column suggested_class``
  (``--dermnet DIR`` is the shortcut). Such sets are split by image.

Every image the model sees, in training and in serving, goes through
``ml.preprocessing.prepare_batch``; this module only decides *which* pixels
(watermark crop, augmentation) reach it.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from .augmentation import rotate_inside
from .classes import CLASS_LABELS, OTHER_CODE
from .preprocessing import open_image

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)

#: DermNet photos carry a white "DermNet" (or "Te Whatu Ora") logo in the lower left.
#: Measured over 979 DermNet photos (fraction of near-white pixels per position), the
#: logo occupies rows 67-92 % of the height and columns 5-55 % of the width, so we
#: keep the top 64 % of the photo, then trim the width to at most 4:3 (HAM's shape)
#: around the centre, where the lesion usually is.
WATERMARK_KEEP_TOP = 0.64
WATERMARK_MAX_ASPECT = 4 / 3
WATERMARK_KINDS = ("dermnet",)


class DataError(Exception):
    """The data directory or CSV does not have the expected layout."""


@dataclass(frozen=True)
class Sample:
    """One labelled photo. ``group`` is the unit that must not straddle two splits."""

    path: str
    label: str
    source: str
    group: str
    watermark: str | None = None
    age: float | None = None
    sex: str | None = None
    site: str | None = None
    #: Fitzpatrick skin type 1-6 where the source records it (fitz17k), else None
    skin_type: int | None = None

    @property
    def kind(self) -> str:
        """``dermoscopic`` or ``clinical``: how the photo was taken, from its source."""
        return kind_of(self.source)


#: How each source's photos were taken. A source not listed counts as clinical: a new set of
#: ordinary photos is the likelier addition, and the product's users take ordinary photos.
DERMOSCOPIC_SOURCES = frozenset({"ham", "derm7pt", "ph2"})
KINDS = ("dermoscopic", "clinical")


def kind_of(source: str) -> str:
    return "dermoscopic" if source in DERMOSCOPIC_SOURCES else "clinical"


#: Fitzpatrick groups reported apart (fitz17k): light, medium, dark skin.
SKIN_TYPE_GROUPS = {"1-2": (1, 2), "3-4": (3, 4), "5-6": (5, 6)}


def skin_type_group(skin_type: int | None) -> str | None:
    for name, members in SKIN_TYPE_GROUPS.items():
        if skin_type in members:
            return name
    return None


def normalise_label(raw: str) -> str:
    return raw.strip().lower()


def load_ham(directory: str | Path) -> list[Sample]:
    """HAM10000 images with their diagnosis, grouped by lesion."""
    directory = Path(directory)
    meta = directory / "HAM10000_metadata.csv"
    if not meta.is_file():
        raise DataError(f"{meta} not found (expected the official HAM10000 metadata file)")
    samples = []
    with open(meta, newline="") as fh:
        for row in csv.DictReader(fh):
            image = directory / "images" / f"{row['image_id']}.jpg"
            if not image.is_file():
                raise DataError(f"{image} listed in the metadata is missing")
            age = row.get("age") or ""
            samples.append(
                Sample(
                    path=str(image),
                    label=normalise_label(row["dx"]),
                    source="ham",
                    group=f"ham:{row['lesion_id']}",
                    age=float(age) if age else None,
                    sex=(row.get("sex") or None),
                    site=(row.get("localization") or None),
                )
            )
    return samples


def load_csv(
    csv_path: str | Path,
    label_column: str = "label",
    path_column: str = "path",
    source: str | None = None,
    watermark: str | None = None,
    group_column: str | None = None,
) -> list[Sample]:
    """Rows of ``path,label`` (extra columns ignored); each image is its own split group
    unless ``group_column`` names a column that ties photos of one lesion or patient."""
    csv_path = Path(csv_path)
    if watermark is not None and watermark not in WATERMARK_KINDS:
        raise DataError(f"unknown watermark kind {watermark!r}; expected one of {WATERMARK_KINDS}")
    root = csv_path.parent
    source = source or csv_path.parent.name or "csv"
    samples = []
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        for column in (path_column, label_column, group_column):
            if column and column not in (reader.fieldnames or []):
                raise DataError(f"{csv_path} has no column {column!r} (columns: {reader.fieldnames})")
        for row in reader:
            image = root / row[path_column]
            if not image.is_file():
                raise DataError(f"{image} listed in {csv_path.name} is missing")
            group = row[group_column] if group_column else row[path_column]
            samples.append(
                Sample(
                    path=str(image),
                    label=normalise_label(row[label_column]),
                    source=source,
                    group=f"{source}:{group}",
                    watermark=watermark,
                )
            )
    return samples


def load_dermnet(directory: str | Path) -> list[Sample]:
    """DermNet NZ photos (``labels.csv`` with ``suggested_class``); logo cropped away."""
    return load_csv(
        Path(directory) / "labels.csv", label_column="suggested_class", source="dermnet", watermark="dermnet"
    )


#: derm7pt's "lentigo" (``bkl?``) mixes solar lentigo (a benign keratosis) with lentigo simplex
#: (melanocytic): neither class fits all 24, so those photos are left out.
DERM7PT_AMBIGUOUS = "bkl?"


def load_derm7pt(directory: str | Path) -> list[Sample]:
    """derm7pt dermoscopic photos (``labels.csv`` with ``suggested_class``), one per case, so
    split by image; the ambiguous lentigo photos are dropped."""
    samples = load_csv(Path(directory) / "labels.csv", label_column="suggested_class", source="derm7pt")
    return [s for s in samples if s.label != DERM7PT_AMBIGUOUS]


def load_ph2(directory: str | Path) -> list[Sample]:
    """PH2 (``labels.csv`` with ``dx``: nv or mel): an external test set, never split or trained on."""
    return load_csv(Path(directory) / "labels.csv", label_column="dx", source="ph2")


def load_fitz17k(directory: str | Path) -> list[Sample]:
    """fitz17k clinical photos (``labels.csv``: ``path,fitzpatrick17k_label,suggested_class,fitzpatrick``)
    with their skin type, split by near-duplicate group: the atlases hold the same photo at
    two sizes, and a split by file would put one copy in training and the other in test."""
    from .near_duplicates import dhash_file, groups_of

    csv_path = Path(directory) / "labels.csv"
    samples = load_csv(csv_path, label_column="suggested_class", source="fitz17k")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if "fitzpatrick" not in (rows[0] if rows else {}):
        raise DataError(f"{csv_path} has no column 'fitzpatrick'")
    types = {str(Path(directory) / r["path"]): int(r["fitzpatrick"] or -1) for r in rows}
    groups = groups_of([dhash_file(s.path) for s in samples])
    return [
        replace(s, group=f"fitz17k:{Path(samples[groups[i]].path).name}",
                skin_type=types[s.path] if 1 <= types[s.path] <= 6 else None)
        for i, s in enumerate(samples)
    ]


def check_labels(samples: Iterable[Sample], allowed: Sequence[str]) -> None:
    unknown = Counter(s.label for s in samples if s.label not in allowed)
    if unknown:
        raise DataError(f"labels not among the known classes {list(allowed)}: {dict(unknown)}")


def _stable_hash(text: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:8], "big")


def split_samples(
    samples: Sequence[Sample], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> dict[str, list[Sample]]:
    """Split by ``group`` (lesion for HAM, image for DermNet), stratified by source and label.

    Deterministic for a seed and independent of the input order, so adding a new
    data source does not reshuffle the existing ones.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError("fractions must be three numbers that sum to 1")
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, members in groups.items():
        # A group's stratum is its most common label (HAM lesions have a single dx).
        label = Counter(m.label for m in members).most_common(1)[0][0]
        strata[(members[0].source, label)].append(name)
    assignment: dict[str, str] = {}
    for key in sorted(strata):
        names = sorted(strata[key], key=lambda g: _stable_hash(g, seed))
        n = len(names)
        n_val = int(round(n * fractions[1]))
        n_test = int(round(n * fractions[2]))
        if n >= 3:  # every split gets at least one example of a class when it can
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        for i, name in enumerate(names):
            assignment[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    out: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    for s in sorted(samples, key=lambda s: s.path):
        out[assignment[s.group]].append(s)
    return out


def crop_watermark(img: Image.Image, kind: str | None) -> Image.Image:
    """Remove a known watermark by cropping (masking would leave its own tell-tale patch)."""
    if kind is None:
        return img
    if kind != "dermnet":
        raise ValueError(f"unknown watermark kind {kind!r}")
    w, h = img.size
    keep_h = max(1, int(round(h * WATERMARK_KEEP_TOP)))
    keep_w = min(w, int(round(keep_h * WATERMARK_MAX_ASPECT)))
    left = (w - keep_w) // 2
    return img.crop((left, 0, left + keep_w, keep_h))


def load_training_image(sample: Sample, input_size: Sequence[int] | None = None) -> Image.Image:
    """Decode with the serving decoder, then drop the source's watermark."""
    img = open_image(sample.path, input_size)
    return crop_watermark(img, sample.watermark)


def augment(img: Image.Image, rng: random.Random) -> Image.Image:
    """A random view: crop, flips, rotation, colour jitter. Skin photos have no "up"."""
    w, h = img.size
    # Random resized crop: 65-100 % of the area, aspect within 3:4..4:3.
    area = rng.uniform(0.65, 1.0) * w * h
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(round(min(w, np.sqrt(area * aspect))))
    ch = int(round(min(h, np.sqrt(area / aspect))))
    x0 = rng.randint(0, w - cw)
    y0 = rng.randint(0, h - ch)
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    img = rotate_inside(img, rng.uniform(-25, 25))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.8, 1.2))
    return img


def view_rng(seed: int, view: int, path: str) -> random.Random:
    """The augmentation of view ``view`` of one photo is fixed by (seed, view, path)."""
    return random.Random(_stable_hash(f"{view}:{path}", seed))


def load_view(sample: Sample, view: int, seed: int, input_size: Sequence[int]) -> Image.Image:
    """View 0 is the clean photo; views >= 1 are deterministic augmentations."""
    img = load_training_image(sample, input_size)
    if view == 0:
        return img
    return augment(img, view_rng(seed, view, sample.path))


def class_counts(samples: Iterable[Sample]) -> dict[str, int]:
    return dict(sorted(Counter(s.label for s in samples).items()))


def summarise(splits: dict[str, list[Sample]]) -> dict:
    """Counts per split, source and label, for metadata and the model card."""
    out = {}
    for split, items in splits.items():
        by_source: dict[str, dict[str, int]] = {}
        for source in sorted({s.source for s in items}):
            by_source[source] = class_counts(s for s in items if s.source == source)
        out[split] = {"images": len(items), "groups": len({s.group for s in items}), "by_source": by_source}
    return out


def known_codes(include_other: bool) -> list[str]:
    codes = list(CLASS_LABELS)
    return codes + [OTHER_CODE] if include_other else codes
