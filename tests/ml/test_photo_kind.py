"""The dermoscopic-or-clinical probe on the embedding: fits, separates, survives a save."""

import numpy as np
import pytest

from ml.photo_kind import KindProbe, load_kind_probe


def embeddings(n, shift, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 16))
    x[:, 3] += shift  # one direction carries the kind, as the rim and the light do in a real embedding
    return x


def test_probe_separates_the_kinds_and_round_trips(tmp_path):
    x = np.concatenate([embeddings(300, -2.0, 0), embeddings(100, 2.0, 1)])
    kinds = ["dermoscopic"] * 300 + ["clinical"] * 100
    probe = KindProbe.fit(x, kinds)
    new = np.concatenate([embeddings(200, -2.0, 2), embeddings(200, 2.0, 3)])
    truth = np.array(["dermoscopic"] * 200 + ["clinical"] * 200)
    assert np.mean(np.array(probe.kinds(new)) == truth) > 0.95
    # balanced weights: the rarer kind is not sacrificed for the common one
    assert np.mean(np.array(probe.kinds(new[200:])) == "clinical") > 0.95
    config = probe.save(tmp_path)
    again = load_kind_probe(tmp_path, config)
    np.testing.assert_allclose(again.p_clinical(new), probe.p_clinical(new), rtol=1e-5)


def test_probe_needs_both_kinds():
    with pytest.raises(ValueError):
        KindProbe.fit(np.zeros((4, 3)), ["clinical"] * 4)


def test_kind_probe_command_writes_a_probe_the_classifier_serves(tmp_path):
    from ml.artifact import read_metadata
    from ml.data import load_dermnet, load_ham, split_samples
    from ml.inference import Classifier
    from ml.kind_training import kind_probe_report
    from tests.conftest import build_tiny_artifact
    from tests.ml.conftest import write_dermnet, write_ham

    art = tmp_path / "tiny-kind"
    build_tiny_artifact(art, version="tiny-kind")
    samples = load_ham(write_ham(tmp_path / "ham", lesions_per_class=4, photos_per_lesion=1)) + \
        load_dermnet(write_dermnet(tmp_path / "dermnet", per_class=3))
    splits = split_samples(samples)
    report = kind_probe_report(art, splits, cache_dir=tmp_path / "scores", write=True)
    assert set(report) >= {"val", "test"} and 0.0 <= report["test"]["accuracy"] <= 1.0
    assert set(report["test"]["per_source"]) <= {"ham", "dermnet"}
    meta = read_metadata(art, verify=True)  # kind.npz is checksummed with the rest
    assert "kind.npz" in meta["files"] and meta["photo_kind"]["kinds"] == ["dermoscopic", "clinical"]
    classifier = Classifier.load(art)
    from ml.data import load_training_image

    results = classifier.predict([load_training_image(s, classifier.input_size) for s in splits["test"][:3]])
    assert all(r.kind in ("dermoscopic", "clinical") for r in results)
    # an artifact without a probe says nothing about the kind
    plain = tmp_path / "plain"
    build_tiny_artifact(plain, version="plain")
    assert Classifier.load(plain).predict([load_training_image(splits["test"][0], (32, 32))])[0].kind is None
