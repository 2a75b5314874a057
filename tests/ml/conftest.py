"""Small generated data sets in the two layouts ``ml`` reads (never ../shared/data)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from ml.classes import CLASS_LABELS

@pytest.fixture(autouse=True, scope="session")
def no_keras_downloads():
    """The ml tests run offline: a Keras download (ImageNet weights of an application, a
    dataset) fails the test that asked for it instead of reaching for the network."""
    from keras.src.utils import file_utils

    def refuse(fname=None, origin=None, *args, **kwargs):
        raise RuntimeError(f"a test tried to download {origin or fname}: pass weights=None or a local file")

    original, file_utils.get_file = file_utils.get_file, refuse
    yield
    file_utils.get_file = original


HAM_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
#: a distinct colour per class, so a tiny model has something real to learn
_HUES = {code: i / len(CLASS_LABELS) for i, code in enumerate(list(CLASS_LABELS) + ["other"])}


def spot_image(label: str, seed: int, size=(60, 45)) -> Image.Image:
    """A skin-toned photo with a coloured blob whose hue depends on the class."""
    import colorsys

    rng = np.random.default_rng(seed)
    w, h = size
    base = np.array([205, 160, 130], dtype=np.float64) + rng.normal(0, 8, (h, w, 3))
    r, g, b = colorsys.hsv_to_rgb(_HUES[label], 0.8, 0.6)
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = w / 2 + rng.normal(0, 3), h / 2 + rng.normal(0, 3)
    blob = ((xx - cx) ** 2 + (yy - cy) ** 2) < (min(w, h) / 3) ** 2
    base[blob] = np.array([r, g, b]) * 255 + rng.normal(0, 8, (blob.sum(), 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def write_ham(root, lesions_per_class: int = 4, photos_per_lesion: int = 2, classes=HAM_DX):
    """A HAM10000-shaped folder: HAM10000_metadata.csv + images/ISIC_*.jpg."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, n = [], 0
    for dx in classes:
        for lesion in range(lesions_per_class):
            lesion_id = f"HAM_{dx}_{lesion:03d}"
            for _ in range(photos_per_lesion):
                image_id = f"ISIC_{n:07d}"
                spot_image(dx, n).save(root / "images" / f"{image_id}.jpg", quality=92)
                rows.append([lesion_id, image_id, dx, "histo", "50.0", "female", "back"])
                n += 1
    with open(root / "HAM10000_metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        writer.writerows(rows)
    return root


def write_dermnet(root, per_class: int = 4, classes=("ad", "acne", "psoriasis", "tinea", "scc", "other")):
    """A DermNet-shaped folder: labels.csv + images/<folder>/*.jpg, each photo with a white
    lower-left logo like the real ones."""
    rows = []
    for label in classes:
        folder = root / "images" / f"Folder {label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = spot_image(label, 1000 + 17 * i + len(label), size=(80, 60))
            arr = np.asarray(img).copy()
            arr[int(0.70 * 60) : int(0.90 * 60), int(0.05 * 80) : int(0.30 * 80)] = 255  # the "logo"
            name = f"{label}-{i:02d}.jpg"
            Image.fromarray(arr).save(folder / name, quality=92)
            rows.append([f"images/Folder {label}/{name}", f"Folder {label}", label, f"md5-{label}-{i}"])
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "dermnet_folder", "suggested_class", "source_md5"])
        writer.writerows(rows)
    return root


@pytest.fixture
def ham_dir(tmp_path):
    return write_ham(tmp_path / "ham")


@pytest.fixture
def dermnet_dir(tmp_path):
    return write_dermnet(tmp_path / "dermnet")
