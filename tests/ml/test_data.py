"""Loaders, leak-free splits and the DermNet watermark crop, on generated data."""

import csv
import random

import numpy as np
import pytest
from PIL import Image

from ml.data import (
    DataError,
    augment,
    crop_watermark,
    load_csv,
    load_dermnet,
    load_ham,
    load_training_image,
    load_view,
    split_samples,
)

from .conftest import write_ham


def test_load_ham_reads_metadata_and_groups_by_lesion(ham_dir):
    samples = load_ham(ham_dir)
    assert len(samples) == 7 * 4 * 2
    assert {s.source for s in samples} == {"ham"}
    assert {s.label for s in samples} == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert len({s.group for s in samples}) == 7 * 4  # two photos per lesion
    assert all(s.watermark is None for s in samples)
    assert samples[0].age == 50.0 and samples[0].site == "back"


def test_load_ham_refuses_a_missing_image(ham_dir):
    next((ham_dir / "images").glob("*.jpg")).unlink()
    with pytest.raises(DataError, match="missing"):
        load_ham(ham_dir)


def test_lesion_level_split_never_puts_one_lesion_in_two_splits(tmp_path):
    samples = load_ham(write_ham(tmp_path / "ham", lesions_per_class=10, photos_per_lesion=3))
    splits = split_samples(samples, seed=0)
    where = {}
    for split, items in splits.items():
        for s in items:
            assert where.setdefault(s.group, split) == split, f"{s.group} is in {where[s.group]} and {split}"
    assert sum(len(v) for v in splits.values()) == len(samples)
    # stratified: every class reaches every split when it has enough lesions
    for items in splits.values():
        assert {s.label for s in items} == {s.label for s in samples}


def test_split_is_deterministic_and_independent_of_input_order(tmp_path):
    samples = load_ham(write_ham(tmp_path / "ham", lesions_per_class=6))
    a = split_samples(samples, seed=3)
    shuffled = samples[:]
    random.Random(1).shuffle(shuffled)
    b = split_samples(shuffled, seed=3)
    assert {k: [s.path for s in v] for k, v in a.items()} == {k: [s.path for s in v] for k, v in b.items()}
    c = split_samples(samples, seed=4)
    assert [s.path for s in a["test"]] != [s.path for s in c["test"]]


def test_load_csv_generic_layout_with_label_column(tmp_path):
    (tmp_path / "pics").mkdir()
    rows = []
    for i, label in enumerate(["Acne", "psoriasis", "tinea"]):
        Image.new("RGB", (20, 20), (200, 150, 120)).save(tmp_path / "pics" / f"{i}.jpg")
        rows.append({"file": f"pics/{i}.jpg", "diagnosis": label})
    with open(tmp_path / "mine.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["file", "diagnosis"])
        writer.writeheader()
        writer.writerows(rows)
    samples = load_csv(tmp_path / "mine.csv", label_column="diagnosis", path_column="file", source="mine")
    assert [s.label for s in samples] == ["acne", "psoriasis", "tinea"]  # codes are lower case
    assert len({s.group for s in samples}) == 3  # split by image
    with pytest.raises(DataError, match="no column"):
        load_csv(tmp_path / "mine.csv", label_column="label")


def test_dermnet_loader_marks_the_watermark(dermnet_dir):
    samples = load_dermnet(dermnet_dir)
    assert samples and all(s.watermark == "dermnet" and s.source == "dermnet" for s in samples)
    assert "other" in {s.label for s in samples}


def test_watermark_crop_removes_the_lower_left_logo(dermnet_dir):
    sample = load_dermnet(dermnet_dir)[0]
    raw = np.asarray(Image.open(sample.path).convert("RGB"))
    assert (raw.min(axis=2) > 240).sum() > 50  # the generated logo is there
    cropped = load_training_image(sample)
    arr = np.asarray(cropped)
    assert (arr.min(axis=2) > 240).sum() == 0  # and gone after the crop
    w, h = cropped.size
    assert w / h <= 4 / 3 + 0.02
    # the top of the photo is kept pixel for pixel
    left = (raw.shape[1] - w) // 2
    np.testing.assert_array_equal(arr[:5], raw[:5, left : left + w])


def test_watermark_crop_is_a_noop_without_a_watermark():
    img = Image.new("RGB", (200, 150))
    assert crop_watermark(img, None) is img
    with pytest.raises(ValueError):
        crop_watermark(img, "someone-else")


def test_augmentation_is_random_but_reproducible(ham_dir):
    sample = load_ham(ham_dir)[0]
    a = np.asarray(load_view(sample, 1, seed=0, input_size=(32, 32)).resize((32, 32)))
    b = np.asarray(load_view(sample, 1, seed=0, input_size=(32, 32)).resize((32, 32)))
    c = np.asarray(load_view(sample, 2, seed=0, input_size=(32, 32)).resize((32, 32)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    clean = load_view(sample, 0, seed=0, input_size=(32, 32))
    assert clean.size == Image.open(sample.path).size  # view 0 is the untouched photo
    out = augment(Image.new("RGB", (200, 150), (180, 120, 100)), random.Random(0))
    assert out.mode == "RGB" and min(out.size) > 20


def test_derm7pt_loader_drops_the_ambiguous_lentigo_and_ph2_reads_dx(tmp_path):
    from ml.data import load_derm7pt, load_ph2

    for name, header, rows in (
        ("derm7pt", "path,derm7pt_diagnosis,suggested_class",
         [("images/A/a.jpg", "melanoma", "mel"), ("images/A/b.jpg", "lentigo", "bkl?"), ("images/A/c.jpg", "clark nevus", "nv")]),
        ("ph2", "path,ph2_diagnosis,dx", [("images/IMD001.jpg", "common_nevus", "nv"), ("images/IMD002.jpg", "melanoma", "mel")]),
    ):
        root = tmp_path / name
        for path, *_ in rows:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(root / path)
        (root / "labels.csv").write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    derm = load_derm7pt(tmp_path / "derm7pt")
    assert [(s.label, s.source) for s in derm] == [("mel", "derm7pt"), ("nv", "derm7pt")]
    assert len({s.group for s in derm}) == 2  # one case per photo: split by photo
    assert [s.label for s in load_ph2(tmp_path / "ph2")] == ["nv", "mel"]
