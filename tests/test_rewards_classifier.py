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
    success_frame = {c: f[np.flatnonzero(pick_frames.labels)[0]] for c, f in frames.items()}
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
