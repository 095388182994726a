"""Success classifier: AUROC and threshold maths, training on simulator frames labelled with ground
truth, save/load through the same path users take, hysteresis, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.rewards.classifier import (
    ClassifierConfig,
    ClassifierLabeler,
    auroc,
    calibrate_threshold,
    load_classifier,
    save_classifier,
    train_classifier,
)
from robot_rl.rewards.frames import FrameDataset, record_sim_frames


def test_auroc_matches_the_pairwise_definition_with_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1, 0.8])
    labels = np.array([True, True, False, True, False, False])
    pairs = [(p, n) for p in scores[labels] for n in scores[~labels]]
    expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert auroc(scores, labels) == pytest.approx(expected)
    with pytest.raises(ValueError, match="both"):
        auroc(scores, np.ones(6, bool))


def test_the_calibrated_threshold_separates_a_separable_set_and_prefers_fewer_false_successes():
    probabilities = np.array([0.1, 0.2, 0.4, 0.7, 0.9])
    labels = np.array([False, False, False, True, True])
    threshold = calibrate_threshold(probabilities, labels)
    assert 0.4 < threshold <= 0.7


@pytest.fixture(scope="module")
def pick_frames():
    return record_sim_frames("PickCube-v0", 20, image_size=32, seed=3)


def test_a_classifier_trained_on_sim_frames_separates_held_out_episodes(pick_frames, tmp_path):
    assert pick_frames.labels.any() and not pick_frames.labels.all()
    model, report = train_classifier(pick_frames, ClassifierConfig(updates=300))
    assert report["val_auroc"] >= 0.97 and report["val_accuracy"] >= 0.95, report
    path = save_classifier(tmp_path / "success.pt", model, report)
    labeler = load_classifier(path, hysteresis=2)
    frames = {c: pick_frames.images[c] for c in pick_frames.cameras}
    np.testing.assert_allclose(labeler.model.probabilities(frames), model.probabilities(frames), atol=1e-6)
    # Hysteresis: success only after two consecutive frames above the threshold.
    positives = np.flatnonzero(pick_frames.labels)
    clearest = positives[np.argmax(model.probabilities(frames)[positives])]
    success_frame = {c: f[clearest] for c, f in frames.items()}
    first, second = labeler.label(success_frame), labeler.label(success_frame)
    assert not first.success and second.success and second.reward == 1.0 and second.confidence >= labeler.threshold
    labeler.reset()
    assert not labeler.label(success_frame).success


def test_bad_inputs_are_clear(tmp_path, pick_frames):
    with pytest.raises(ValueError, match="train one"):
        load_classifier(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a success classifier"):
        load_classifier(tmp_path / "junk.pt")
    only_failures = pick_frames.subset(~pick_frames.labels)
    with pytest.raises(ValueError, match="both success and failure"):
        train_classifier(only_failures, ClassifierConfig(updates=1))
    with pytest.raises(ValueError, match="uint8"):
        FrameDataset({"front": np.zeros((2, 8, 8, 3), np.float32)}, np.zeros(2, bool), np.zeros(2, int))
    model, _ = train_classifier(pick_frames, ClassifierConfig(updates=2))
    labeler = ClassifierLabeler(model, 0.5)
    with pytest.raises(ValueError, match="missing"):
        labeler.label({"front": pick_frames.images["front"][0]})
    saved = pick_frames.save(tmp_path / "frames.npz")
    assert len(FrameDataset.load(saved)) == len(pick_frames)


@pytest.fixture(scope="module")
def trained(pick_frames, tmp_path_factory):
    model, report = train_classifier(pick_frames, ClassifierConfig(updates=800))
    return save_classifier(tmp_path_factory.mktemp("clf") / "success.pt", model, report)


def test_the_classifier_reward_ends_episodes_where_the_sim_says_success(trained):
    import sim
    from robot_rl.rewards.wrapper import LabelerReward
    from sim.experts import expert_for

    env = LabelerReward(sim.make("PickCube-v0", image_size=32), load_classifier(trained, hysteresis=3), "pick up the cube")
    try:
        ends = []
        for seed in range(3):
            obs, _ = env.reset(seed=500 + seed)
            expert, first_true = expert_for("PickCube-v0", env.unwrapped), None
            for step in range(120):
                obs, reward, terminated, truncated, info = env.step(expert.act(obs))
                if info["true_success"] and first_true is None:
                    first_true = step
                if terminated or truncated:
                    break
            lifted = env.unwrapped.cube_position()[2] - 0.02  # m above resting; success is 0.06
            ends.append((terminated, reward, first_true, step, round(float(lifted), 3)))
        # The classifier (3 frames of hysteresis) fires on the lift: within 4 steps after the true success, or a frame or two
        # early with the cube already most of the way up.
        assert all(t and r == 1.0 and ((ft is not None and 0 <= s - ft <= 4) or lifted > 0.04)
                   for t, r, ft, s, lifted in ends), ends
        assert env.no_labels == 0 and info["reward_source"] == "classifier"
    finally:
        env.close()


def test_a_failing_labeler_is_no_label_not_a_crash():
    import sim
    from robot_rl.rewards.base import Labeler
    from robot_rl.rewards.wrapper import LabelerReward

    class Flaky(Labeler):
        name, calls = "flaky", 0

        def label(self, images, task):
            self.calls += 1
            raise RuntimeError("model server went away")

    env = LabelerReward(sim.make("PickCube-v0", image_size=32), Flaky(), "pick", cameras=("front",), image_size=32)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
    assert (reward, terminated, info["success"], env.no_labels) == (0.0, False, False, 1)
    env.close()


def test_training_with_the_classifier_reward_logs_true_success(trained, tmp_path):
    import json

    from robot_rl.train import TrainConfig, Trainer

    cfg = TrainConfig(out_dir=str(tmp_path / "run"), reward={"model": str(trained)}, image_size=32, total_env_steps=120,
                      num_demos=2, learning_starts=60, eval_every=120, eval_episodes=1, progress=False,
                      tensorboard=False, agent={"hidden_dims": (32, 32), "utd": 1})
    Trainer(cfg).run()
    log = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert log and all("true_success" in e for e in log)
    with pytest.raises(ValueError, match="image_size=32"):
        Trainer(TrainConfig(out_dir=str(tmp_path / "bad"), reward={"model": str(trained)}, image_size=64, num_demos=1,
                            progress=False, tensorboard=False))


def test_the_rewards_cli_records_trains_and_evaluates(tmp_path):
    import json
    import subprocess
    import sys

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "robot_rl.cli", "rewards", *args], capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    frames = cli("record-frames", "--episodes", "16", "--image-size", "32", "--out", str(tmp_path / "f.npz"))
    assert frames["positives"] > 0
    trained = cli("train-classifier", "--frames", str(tmp_path / "f.npz"), "--updates", "150", "--out",
                  str(tmp_path / "m.pt"))
    assert 0 < trained["threshold"] < 1 and trained["val_auroc"] > 0.9
    evaluated = cli("evaluate", "--model", str(tmp_path / "m.pt"), "--episodes", "6")
    assert evaluated["frames"] > 0 and evaluated["auroc"] > 0.9


def test_the_reward_factory_reads_a_model_file_once_and_names_bad_files(trained, tmp_path, monkeypatch):
    import torch

    from robot_rl.rewards.factory import RewardModelConfig, make_labeler

    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    labeler = make_labeler(RewardModelConfig(model=str(trained), hysteresis=2))
    assert isinstance(labeler, ClassifierLabeler) and labeler.hysteresis.frames == 2
    assert reads == [trained]  # a model file can be tens of MB: read once, then dispatched on its format
    with pytest.raises(ValueError, match="reward.model: no reward model .* train one"):
        make_labeler(RewardModelConfig(model=str(tmp_path / "missing.pt")))
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither a success classifier nor a preference reward"):
        make_labeler(RewardModelConfig(model=str(tmp_path / "other.pt")))
