"""The whole-network recipe (``python -m ml train --recipe whole``) on a few generated photos:
a tiny run that ends in a served artifact, a resume that goes on where it stopped, and the
sampling and schedule it rests on."""

import json

import numpy as np
import pytest

from ml.artifact import read_metadata
from ml.cli import main
from ml.whole_network import (
    BEST_FILE,
    LAST_FILE,
    STATE_FILE,
    CheckpointError,
    Recipe,
    class_power_weights,
    epoch_draws,
)

from .conftest import spot_image, write_dermnet, write_ham


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("whole")
    write_ham(root / "ham", lesions_per_class=6, photos_per_lesion=2)
    write_dermnet(root / "dermnet", per_class=6)
    return root


def whole_args(root, out, checkpoint, *extra):
    return [
        "train", "--recipe", "whole", "--ham", str(root / "ham"), "--dermnet", str(root / "dermnet"),
        "--arch", "baseline_cnn", "--weights", "none", "--input-size", "32", "--batch-size", "16",
        "--lr", "3e-3", "--warmup-epochs", "0.5", "--dropout", "0.0", "--photos-per-epoch", "48",
        "--out", str(out), "--checkpoint", str(checkpoint), "--runs", str(root / "runs"), "--threads", "1", *extra,
    ]


@pytest.fixture(scope="module")
def straight(data):
    """Three epochs in one call: the reference for the resumed run."""
    out, ck = data / "art" / "straight", data / "ck" / "straight"
    assert main(whole_args(data, out, ck, "--epochs", "3")) == 0
    return {"out": out, "checkpoint": ck}


def test_a_tiny_whole_network_run_ships_a_served_artifact(straight):
    from ml.inference import Classifier

    meta = read_metadata(straight["out"], verify=True)
    assert meta["preprocessing"] == "unit+sog6"  # colour constancy named in the one pipeline string
    t = meta["training"]
    assert t["recipe"] == "whole" and t["epochs_run"] == 3 and t["finished"] is True
    assert 1 <= t["best_epoch"] <= 3 and t["batchnorm"] == "train" and t["precision"] == "float32"
    assert len(meta["training"]["epoch_seconds"]) == 3
    assert set(meta["metrics"]["val"]["gate_false_rejection_per_source"]) == {"ham", "dermnet"}
    clf = Classifier.load(straight["out"])
    results = clf.predict([spot_image("mel", 3), spot_image("acne", 4)])
    assert all(abs(sum(p.probability for p in r.predictions) - 1.0) < 1e-4 for r in results)


def test_resume_goes_on_where_the_run_stopped_and_ends_where_an_unbroken_run_ends(data, straight):
    out, ck = data / "art" / "resumed", data / "ck" / "resumed"
    # first session: one epoch of three, no artifact yet
    assert main(whole_args(data, out, ck, "--epochs", "3", "--epochs-now", "1")) == 0
    state = json.loads((ck / STATE_FILE).read_text())
    assert state["epochs_done"] == 1 and state["finished"] is False
    assert (ck / LAST_FILE).is_file() and (ck / BEST_FILE).is_file() and not out.exists()
    # a second start without --resume would overwrite the run: refused
    with pytest.raises(CheckpointError, match="already holds a run"):
        main(whole_args(data, out, ck, "--epochs", "3"))
    # a resume with another recipe is refused too
    with pytest.raises(CheckpointError, match="another recipe"):
        main(whole_args(data, out, ck, "--epochs", "3", "--resume", "--lr", "1e-2"))
    # next session: the other two epochs
    assert main(whole_args(data, out, ck, "--epochs", "3", "--resume")) == 0
    resumed = json.loads((ck / STATE_FILE).read_text())
    reference = json.loads((straight["checkpoint"] / STATE_FILE).read_text())
    assert resumed["epochs_done"] == 3 and resumed["finished"] is True
    assert resumed["history"]["loss"][0] == state["history"]["loss"][0]  # epoch 1 kept, not redone
    # same draws, same views, same optimizer state: the curves of an unbroken run
    np.testing.assert_allclose(resumed["history"]["loss"], reference["history"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(resumed["history"]["val_loss"], reference["history"]["val_loss"], rtol=1e-4)
    assert read_metadata(out)["training"]["epochs_run"] == 3


def test_finish_now_builds_the_artifact_from_the_epochs_done_without_training_more(data):
    out, ck = data / "art" / "early", data / "ck" / "early"
    assert main(whole_args(data, out, ck, "--epochs", "3", "--epochs-now", "1")) == 0
    assert main(whole_args(data, out, ck, "--epochs", "3", "--resume", "--finish-now")) == 0
    state = json.loads((ck / STATE_FILE).read_text())
    assert state["epochs_done"] == 1 and state["finished"] is False
    t = read_metadata(out, verify=True)["training"]
    assert t["epochs_run"] == 1 and t["best_epoch"] == 1 and t["finished"] is False


def test_epoch_draws_are_fixed_by_seed_and_epoch_and_balance_the_classes():
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    recipe = Recipe(sampling_power=0.5, seed=3)
    a, b = epoch_draws(y, 3, recipe, 1), epoch_draws(y, 3, recipe, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, epoch_draws(y, 3, recipe, 2))
    share = np.bincount(y[a], minlength=3) / len(a)
    # weight n ** -0.5 per photo: classes drawn in proportion to sqrt(n): 30 : 9.5 : 3.2
    np.testing.assert_allclose(share, np.sqrt([900, 90, 10]) / np.sqrt([900, 90, 10]).sum(), atol=0.04)
    full = epoch_draws(y, 3, Recipe(sampling_power=1.0), 1)
    assert np.bincount(y[full], minlength=3).min() > 250  # every class about a third


def test_loss_weights_complete_the_balance_and_keep_a_mean_of_one():
    y = np.array([0] * 900 + [1] * 100)
    w = class_power_weights(y, 2, 0.5)
    assert w[y].mean() == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(3.0)  # sqrt(900 / 100)


def test_recipe_refuses_unknown_modes():
    with pytest.raises(ValueError):
        Recipe(batchnorm="sometimes")
    with pytest.raises(ValueError):
        Recipe(precision="int4")
    with pytest.raises(ValueError):
        Recipe(ema=1.0)  # an average that never moves


def test_init_from_starts_a_new_cycle_from_a_trained_artifact(data, straight):
    """A second warm-up + cosine cycle starts from the artifact's weights: at learning rate 0
    (and BatchNorm frozen) it must come out as the same network, and it names its start."""
    import keras

    out, ck = data / "art" / "second", data / "ck" / "second"
    assert main(whole_args(data, out, ck, "--epochs", "1", "--lr", "0", "--batchnorm", "frozen",
                           "--init-from", str(straight["out"]))) == 0
    before, after = read_metadata(straight["out"]), read_metadata(out, verify=True)
    assert after["training"]["init_from"] == f"{before['version']}@{before['files']['model.keras']}"
    old = keras.saving.load_model(straight["out"] / "model.keras", compile=False).get_weights()
    new = keras.saving.load_model(out / "model.keras", compile=False).get_weights()
    assert len(old) == len(new)
    for a, b in zip(old, new):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the start is part of the recipe: resuming it from another artifact is refused
    with pytest.raises(CheckpointError, match="another recipe"):
        main(whole_args(data, out, ck, "--epochs", "2", "--lr", "0", "--batchnorm", "frozen", "--resume"))


def test_averaged_weights_are_the_optimizers_moving_average_and_leave_the_model_alone():
    import keras

    from ml.whole_network import averaged_weights, make_optimizer

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = make_optimizer(Recipe(lr=0.1, warmup_epochs=0.0, epochs=10, ema=0.5), steps_per_epoch=1)
    start = [w.copy() for w in model.get_weights()]
    ones = [keras.ops.ones_like(v) for v in model.trainable_variables]
    optimizer.apply_gradients(zip(ones, model.trainable_variables))
    first = [w.copy() for w in model.get_weights()]
    optimizer.apply_gradients(zip(ones, model.trainable_variables))
    now = model.get_weights()
    # first step: the average is the weights; then 0.5 * average + 0.5 * weights
    expected = [0.5 * f + 0.5 * n for f, n in zip(first, now)]
    for got, want in zip(averaged_weights(model, optimizer), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    for got, want in zip(model.get_weights(), now):  # the model keeps training its own weights
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(now[0], start[0]) and not np.allclose(expected[0], now[0])
    # without an average the weights are the model's own
    plain = make_optimizer(Recipe(lr=0.1, epochs=10), steps_per_epoch=1)
    plain.build(model.trainable_variables)
    for got, want in zip(averaged_weights(model, plain), now):
        np.testing.assert_array_equal(got, want)


def test_an_ema_run_ships_its_average_and_resumes_it(data):
    """The best epoch's saved weights are the average, not the last step's; the average travels
    in the checkpoint, so a resumed run validates what an unbroken one does."""
    straight_out, straight_ck = data / "art" / "ema", data / "ck" / "ema"
    assert main(whole_args(data, straight_out, straight_ck, "--epochs", "2", "--ema", "0.9")) == 0
    out, ck = data / "art" / "ema-resumed", data / "ck" / "ema-resumed"
    assert main(whole_args(data, out, ck, "--epochs", "2", "--ema", "0.9", "--epochs-now", "1")) == 0
    with pytest.raises(CheckpointError, match="another recipe"):
        main(whole_args(data, out, ck, "--epochs", "2", "--resume"))  # the average is part of the recipe
    assert main(whole_args(data, out, ck, "--epochs", "2", "--ema", "0.9", "--resume")) == 0
    reference = json.loads((straight_ck / STATE_FILE).read_text())
    resumed = json.loads((ck / STATE_FILE).read_text())
    np.testing.assert_allclose(resumed["history"]["val_loss"], reference["history"]["val_loss"], rtol=1e-4)
    assert read_metadata(straight_out, verify=True)["training"]["ema"] == 0.9
    with np.load(straight_ck / BEST_FILE) as best, np.load(straight_ck / LAST_FILE) as last:
        n = len(best.files)
        assert any(not np.allclose(best[f"arr_{i}"], last[f"arr_{i}"]) for i in range(n))


def test_a_checkpoint_from_before_a_recipe_field_counts_as_its_default(tmp_path):
    from dataclasses import asdict

    from ml.whole_network import LAST_FILE as last, read_state

    older = asdict(Recipe())
    del older["ema"]  # written before the field existed
    (tmp_path / STATE_FILE).write_text(json.dumps({"recipe": older}))
    (tmp_path / last).write_bytes(b"")
    assert read_state(tmp_path, Recipe())["recipe"] == older
    with pytest.raises(CheckpointError, match="another recipe"):
        read_state(tmp_path, Recipe(ema=0.99))


@pytest.fixture(scope="module")
def second_seed(data, straight):
    """The straight run's recipe with another training seed: a second member for a soup."""
    out, ck = data / "art" / "seed1", data / "ck" / "seed1"
    assert main(whole_args(data, out, ck, "--epochs", "3", "--train-seed", "1")) == 0
    return out


def test_train_seed_changes_the_run_but_not_the_split(straight, second_seed):
    first, second = read_metadata(straight["out"]), read_metadata(second_seed)
    assert (first["training"]["seed"], second["training"]["seed"]) == (0, 1)
    assert second["training_data"] == first["training_data"]  # same photos in every split
    assert second["files"]["model.keras"] != first["files"]["model.keras"]


def combine_args(command, root, out, *members, extra=()):
    return [command, "--ham", str(root / "ham"), "--dermnet", str(root / "dermnet"),
            "--members", *map(str, members), "--out", str(out), "--runs", str(root / "runs"), "--threads", "1", *extra]


def test_a_soup_is_the_weighted_mean_of_its_members_and_serves(data, straight, second_seed):
    import keras

    from ml.inference import Classifier

    out = data / "art" / "soup"
    assert main(combine_args("soup", data, out, straight["out"], second_seed, extra=("--shares", "3", "1"))) == 0
    meta = read_metadata(out, verify=True)
    t = meta["training"]
    assert t["recipe"] == "soup" and [m["share"] for m in t["members"]] == [0.75, 0.25]
    assert [m["sha256"] for m in t["members"]] == [
        read_metadata(p)["files"]["model.keras"] for p in (straight["out"], second_seed)]
    a, b, mixed = (keras.saving.load_model(p / "model.keras", compile=False).get_weights()
                   for p in (straight["out"], second_seed, out))
    for x, y, z in zip(a, b, mixed):
        np.testing.assert_allclose(z, 0.75 * x + 0.25 * y, rtol=1e-5, atol=1e-6)
    assert set(meta["metrics"]["val"]["gate_false_rejection_per_source"]) == {"ham", "dermnet"}
    results = Classifier.load(out).predict([spot_image("mel", 3), spot_image("acne", 4)])
    assert all(abs(sum(p.probability for p in r.predictions) - 1.0) < 1e-4 for r in results)


def test_a_soup_refuses_members_that_are_not_one_network(data, straight, tmp_path):
    import shutil

    from ml.artifact import write_artifact

    other = tmp_path / "other"
    shutil.copytree(straight["out"], other)
    meta = read_metadata(other)
    meta["input_size"] = [40, 40]
    write_artifact(other, meta)
    with pytest.raises(SystemExit, match="input_size"):
        main(combine_args("soup", data, tmp_path / "soup", straight["out"], other))
    with pytest.raises(SystemExit, match="one number per member"):
        main(combine_args("soup", data, tmp_path / "soup", straight["out"], straight["out"], extra=("--shares", "1")))
    assert not (tmp_path / "soup").exists()  # nothing half-written


def test_mean_weights_checks_shapes_and_shares():
    from ml.members import MemberError
    from ml.soup import mean_weights

    one, two = [np.zeros((2, 3)), np.ones(3)], [np.ones((2, 3)), np.zeros(3)]
    mixed = mean_weights([one, two], [1, 3])
    np.testing.assert_allclose(mixed[0], 0.75)
    np.testing.assert_allclose(mixed[1], 0.25)
    with pytest.raises(MemberError, match="not the same network"):
        mean_weights([one, [np.ones((3, 2)), np.zeros(3)]], [1, 1])
    with pytest.raises(MemberError, match="non-negative"):
        mean_weights([one, two], [1, -1])
    with pytest.raises(MemberError, match="two or more"):
        mean_weights([one], [1])


def test_an_ensemble_serves_the_share_weighted_mean_of_its_members_logits(data, straight, second_seed):
    """One model, one engine call: its logits are the members' mixed by share (the temperature
    comes on top), its embedding member 1's, so the gate and the timeline keep member 1's space."""
    import keras

    from ml.inference import Classifier
    from ml.preprocessing import prepare_batch

    out = data / "art" / "ensemble"
    assert main(combine_args("ensemble", data, out, straight["out"], second_seed, extra=("--shares", "1", "3"))) == 0
    meta = read_metadata(out, verify=True)
    t = meta["training"]
    assert t["recipe"] == "ensemble" and [m["share"] for m in t["members"]] == [0.25, 0.75]
    assert set(meta["metrics"]["val"]["gate_false_rejection_per_source"]) == {"ham", "dermnet"}
    images = [spot_image("mel", 3), spot_image("acne", 4)]
    batch = prepare_batch(images, meta["input_size"], meta["preprocessing"])
    outputs = [keras.saving.load_model(p / "model.keras", compile=False)(batch, training=False)
               for p in (straight["out"], second_seed, out)]
    (l1, e1), (l2, _), (mixed, embedding) = ([np.asarray(x) for x in o] for o in outputs)
    np.testing.assert_allclose(mixed, 0.25 * l1 + 0.75 * l2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embedding, e1, rtol=1e-5, atol=1e-6)
    results = Classifier.load(out).predict(images)
    assert all(abs(sum(p.probability for p in r.predictions) - 1.0) < 1e-4 for r in results)
    # a combined artifact is not a member: name its members instead
    with pytest.raises(SystemExit, match="give its members"):
        main(combine_args("ensemble", data, data / "art" / "twice", out, straight["out"]))
