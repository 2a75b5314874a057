"""fitz17k: skin types read, near-duplicates kept in one split, and sampling by source and class."""

import csv
import io

import numpy as np
import pytest
from PIL import Image

from ml.data import kind_of, load_fitz17k, skin_type_group, split_samples
from ml.near_duplicates import dhash, dhash_file, groups_of
from ml.whole_network import Recipe, epoch_draws, sampling_strata

from .conftest import spot_image


def photo(seed: int, size=(320, 240)) -> Image.Image:
    """A clinical-looking photo: a smooth random field (so hashes differ) with a spot."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(60, 220, (6, 8, 3)).astype(np.uint8)
    img = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    spot = spot_image("mel", seed, (size[0] // 3, size[1] // 3))
    img.paste(spot, (size[0] // 3, size[1] // 3))
    return img


def recompressed(img: Image.Image, size, quality: int = 60) -> Image.Image:
    buf = io.BytesIO()
    img.resize(size, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def write_fitz17k(root, n_per_class: int = 6, duplicate_of: int = 0):
    """A fitz17k-shaped folder; the last photo is ``duplicate_of`` saved again at half size."""
    rows = []
    (root / "images").mkdir(parents=True)
    labels = ["mel", "bcc", "other"]
    for i in range(n_per_class * len(labels)):
        label = labels[i % len(labels)]
        path = f"images/{label}/{i:04d}.jpg"
        (root / path).parent.mkdir(exist_ok=True)
        photo(i).save(root / path, quality=90)
        rows.append([path, f"atlas-{label}", label, str(i % 7 if i % 7 else -1)])
    dup = f"images/{labels[duplicate_of % 3]}/dup.jpg"
    recompressed(photo(duplicate_of), (160, 120)).save(root / dup, quality=70)
    rows.append([dup, "atlas-dup", labels[duplicate_of % 3], "3"])
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "fitzpatrick17k_label", "suggested_class", "fitzpatrick"])
        writer.writerows(rows)
    return root


def test_a_resized_recompressed_copy_hashes_close_and_another_photo_far():
    a = photo(1)
    near = int(np.sum(dhash(a) != dhash(recompressed(a, (160, 120)))))
    far = int(np.sum(dhash(a) != dhash(photo(2))))
    assert near <= 20 < far
    assert dhash(a).shape == (256,)


def test_groups_join_chains_and_leave_strangers_alone():
    base = np.zeros(256, dtype=bool)
    one_off = base.copy()
    one_off[:15] = True  # 15 bits from base
    two_off = one_off.copy()
    two_off[15:30] = True  # 15 from one_off, 30 from base: joined through the chain
    stranger = np.ones(256, dtype=bool)
    assert groups_of([base, one_off, two_off, stranger]) == [0, 0, 0, 3]
    assert groups_of([]) == []


def test_loader_reads_skin_types_and_groups_the_duplicate(tmp_path):
    root = write_fitz17k(tmp_path / "fitz17k", duplicate_of=4)
    samples = load_fitz17k(root)
    assert len(samples) == 19
    assert {s.source for s in samples} == {"fitz17k"} and {s.kind for s in samples} == {"clinical"}
    by_name = {s.path.rsplit("/", 1)[-1]: s for s in samples}
    assert by_name["dup.jpg"].group == by_name["0004.jpg"].group
    assert len({s.group for s in samples}) == 18
    assert by_name["0003.jpg"].skin_type == 3 and by_name["0007.jpg"].skin_type is None  # -1: unknown
    splits = split_samples(samples)
    where = {s.path: name for name, items in splits.items() for s in items}
    assert where[by_name["dup.jpg"].path] == where[by_name["0004.jpg"].path]


def test_loader_hashes_files_as_decoded(tmp_path):
    path = tmp_path / "a.jpg"
    photo(5).save(path, quality=95)
    assert int(np.sum(dhash_file(path) != dhash(photo(5)))) <= 6


def test_kinds_and_skin_type_groups():
    assert kind_of("ham") == kind_of("derm7pt") == kind_of("ph2") == "dermoscopic"
    assert kind_of("dermnet") == kind_of("fitz17k") == kind_of("a-new-phone-set") == "clinical"
    assert [skin_type_group(t) for t in (1, 2, 3, 4, 5, 6, None, -1)] == ["1-2", "1-2", "3-4", "3-4", "5-6", "5-6",
                                                                        None, None]


def test_sampling_by_source_and_class_draws_a_small_clinical_class_more_often():
    # 90 dermoscopic melanomas and 10 clinical ones: by class they share one weight, so the
    # clinical ones are 10 % of melanoma draws; by (source, class) they get sqrt(10)/(sqrt(10)+sqrt(90)).
    labels = ["mel"] * 100 + ["nv"] * 100
    sources = ["ham"] * 90 + ["fitz17k"] * 10 + ["ham"] * 100
    y = np.array([0] * 100 + [1] * 100)
    strata = sampling_strata(labels, sources, "source_class")
    assert len(set(strata.tolist())) == 3
    recipe = Recipe(photos_per_epoch=20000, sampling_strata="source_class")
    draws = epoch_draws(y, 2, recipe, epoch=1, strata=strata)
    clinical_share = np.mean((draws >= 90) & (draws < 100)) / np.mean(draws < 100)
    assert clinical_share == pytest.approx(np.sqrt(10) / (np.sqrt(10) + np.sqrt(90)), abs=0.02)
    by_class = epoch_draws(y, 2, Recipe(photos_per_epoch=20000), epoch=1)
    assert np.mean((by_class >= 90) & (by_class < 100)) / np.mean(by_class < 100) == pytest.approx(0.10, abs=0.02)
    assert np.array_equal(sampling_strata(labels, sources, "class"), y)


def test_recipe_refuses_an_unknown_stratum():
    with pytest.raises(ValueError, match="sampling_strata"):
        Recipe(sampling_strata="skin_type")
