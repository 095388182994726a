"""Language-conditioned labelers: the VLM-RM formula with hand-set embeddings; CLIP and SigLIP loaded
from save_pretrained directories through the users' path; a tiny LLaVA through transformers; the
OpenAI-compatible backend against a real HTTP server on loopback (success, preferences -> a
Bradley-Terry reward model, GVL progress); the cache; offline relabelling; training with a VLM reward;
and the failures (missing model, offline hub id, unreachable server, unparsable answers)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from robot_rl.rewards.base import Label, instruction_for
from robot_rl.rewards.clip import ClipReward, HFClipEncoder, vlm_rm_reward
from robot_rl.rewards.frames import FrameDataset
from robot_rl.rewards.vlm import (
    OpenAIVLM,
    QueryCache,
    TransformersVLM,
    VLMAnswerError,
    VLMProgress,
    VLMQueries,
    VLMSuccess,
    make_backend,
    parse_progress,
    value_order_correlation,
)
from tests.vlm_fixtures import make_tiny_clip, make_tiny_vlm
from tests.vlm_server import JudgeServer, red_frames, redness


# -- VLM-RM semantics with embeddings set by hand ------------------------------------------------
class HandEncoder:
    """Embeddings chosen by the test: an image's embedding is its mean colour; texts map by a table."""

    name = "hand"

    def __init__(self, texts: dict[str, list[float]]):
        self.texts = texts

    def embed_images(self, images):
        x = np.asarray(images, float).mean(axis=(1, 2))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def embed_texts(self, texts):
        x = np.array([self.texts[t] for t in texts], float)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_vlm_rm_reward_is_cosine_at_alpha_0_and_keeps_only_the_goal_direction_at_alpha_1():
    g, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    x = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(vlm_rm_reward(x, g, b, 0.0), x @ g)  # 1 - |x - g|^2 / 2 = x.g for unit vectors
    # alpha = 1: only the component along d = (g - b)/|g - b| counts; moving along z (orthogonal to both
    # prompts) costs nothing, moving from goal toward baseline costs.
    r = vlm_rm_reward(np.array([[1.0, 0, 0], [0.8, 0, 0.6], [0.6, 0.8, 0]]), g, b, 1.0)
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(1 - 0.5 * (0.2 / np.sqrt(2)) ** 2)
    assert r[2] < r[1]
    with pytest.raises(ValueError, match="alpha"):
        vlm_rm_reward(x, g, b, 1.5)
    with pytest.raises(ValueError, match="embed identically"):
        vlm_rm_reward(x, g, g, 0.5)


def test_clip_reward_ranks_frames_by_closeness_to_the_goal_and_calibrates_a_success_threshold():
    encoder = HandEncoder({"a red cube lifted": [1, 0, 0], "a robot arm": [0.5, 0.5, 0.5]})
    levels = np.linspace(0, 1, 21)
    frames = red_frames(levels)
    labeler = ClipReward(encoder, baseline="a robot arm", alpha=0.5, cameras=("front",), hysteresis=2)
    rewards = labeler.rewards({"front": frames}, "a red cube lifted")
    assert np.all(np.diff(rewards) > 0)  # redder = closer to the goal
    data = FrameDataset({"front": frames}, levels >= 0.7, np.arange(21) // 7, "a red cube lifted")
    report = labeler.calibrate(data)
    assert report["auroc"] == 1.0 and report["precision"] == 1.0 and report["recall"] == 1.0
    red = {"front": frames[-1]}
    assert [labeler.label(red, "a red cube lifted").success for _ in range(2)] == [False, True]  # hysteresis
    labeler.reset()
    assert not labeler.label({"front": frames[0]}, "a red cube lifted").success
    with pytest.raises(ValueError, match="missing"):
        labeler.label({"wrist": frames[0]}, "a red cube lifted")


# -- transformers checkpoints built here, loaded like a user's --------------------------------------
@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_clip_and_siglip_checkpoints_load_from_a_directory_and_give_the_vlm_rm_reward(kind, tmp_path):
    import torch

    path = make_tiny_clip(tmp_path / kind, kind=kind)
    encoder = HFClipEncoder(str(path))
    frames = red_frames([0.0, 0.5, 1.0], size=40)
    images = encoder.embed_images(frames)
    texts = encoder.embed_texts(["a red cube", "a robot arm"])
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)
    # Same numbers as the model's own embeddings, normalised.
    with torch.no_grad():
        pixels = encoder.processor(images=list(frames), return_tensors="pt")["pixel_values"]
        own = encoder.model.get_image_features(pixel_values=pixels).pooler_output.numpy()
    np.testing.assert_allclose(images, own / np.linalg.norm(own, axis=1, keepdims=True), atol=1e-5)
    labeler = ClipReward(encoder, alpha=0.5)
    np.testing.assert_allclose(labeler.rewards({"front": frames}, "a red cube"),
                               vlm_rm_reward(images, texts[0], texts[1], 0.5), atol=1e-5)
    np.testing.assert_allclose(HFClipEncoder(str(path)).embed_images(frames), images, atol=1e-6)  # deterministic


def test_a_missing_model_directory_or_an_offline_hub_id_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="does not exist"):
        HFClipEncoder(str(tmp_path / "no_such_model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        HFClipEncoder(str(tmp_path / "empty"))
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read once at import: set the live flag too
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="offline"):
        HFClipEncoder("robot-rl-tests/no-such-clip")


def test_a_local_llava_answers_with_normalised_choice_probabilities_and_the_cache_asks_once(tmp_path, caplog):
    import torch

    backend = TransformersVLM(str(make_tiny_vlm(tmp_path / "vlm")))
    frames = red_frames([0.1, 0.9], size=32)
    p = backend.choice_probabilities([frames[0]], "Has the task been completed? Answer Yes or No.", ("Yes", "No"))
    assert set(p) == {"Yes", "No"} and sum(p.values()) == pytest.approx(1.0)
    with torch.no_grad():  # the same numbers from the model's logits by hand
        logits = backend.model(**backend._inputs([frames[0]], "Has the task been completed? Answer Yes or No."))
        ids = backend.tokenizer.convert_tokens_to_ids(["Yes", "No"])
        expected = torch.softmax(logits.logits[0, -1][ids], 0).numpy()
    assert p["Yes"] == pytest.approx(float(expected[0]), abs=1e-5)
    queries = VLMQueries(backend, QueryCache(tmp_path / "answers.sqlite"))
    labeler = VLMSuccess(queries, threshold=0.5)
    first = labeler.label({"front": frames[1]}, "lift the cube")
    again = labeler.label({"front": frames[1]}, "lift the cube")
    assert first.confidence == again.confidence and queries.cache.hits == 1 and queries.cache.misses == 1
    assert QueryCache(tmp_path / "answers.sqlite").get(next(iter(_keys(tmp_path / "answers.sqlite")))) is not None
    # A random model's progress answer is not parsable: no labels for the episode, logged, no crash.
    progress = VLMProgress(queries, max_frames=4)
    with caplog.at_level(logging.WARNING):
        labels = progress.label_episode({"front": red_frames(np.linspace(0, 1, 6), size=32)}, "lift the cube")
    assert labels == [None] * 5 and "no labels" in caplog.text


def _keys(path):
    import sqlite3

    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT key FROM answers")]


# -- the OpenAI-compatible backend against a real server -------------------------------------------
@pytest.fixture
def judge():
    server = JudgeServer()
    yield server
    server.close()


def test_http_success_probabilities_come_from_logprobs_and_separate_success(judge):
    labeler = VLMSuccess(VLMQueries(make_backend(f"{judge.url}#judge")))
    levels = np.linspace(0, 1, 11)
    labels = [labeler.label({"front": f}, "make it red") for f in red_frames(levels)]
    confidences = np.array([label.confidence for label in labels])
    assert np.all(np.diff(confidences) >= 0) and confidences[0] < 0.1 and confidences[-1] > 0.9
    assert [label.success for label in labels] == list(confidences >= 0.5)
    sent = judge.requests[0]
    assert sent["logprobs"] is True and sent["max_tokens"] == 1 and "make it red" in sent["messages"][0]["content"][0]["text"]


def test_without_logprobs_the_written_answer_counts_and_is_marked_uncalibrated():
    server = JudgeServer(logprobs=False)
    try:
        backend = OpenAIVLM(server.url, "judge")
        p = backend.choice_probabilities(list(red_frames([0.9])), "Answer Yes or No.", ("Yes", "No"))
        assert p == {"Yes": 1.0, "No": 0.0} and backend.calibrated is False
    finally:
        server.close()


def test_unparsable_answers_and_a_dead_server_give_no_label_not_a_crash(caplog):
    server = JudgeServer(answer="I am not sure, maybe.")
    labeler = VLMSuccess(VLMQueries(OpenAIVLM(server.url, "judge", timeout_s=2.0)))
    frame = {"front": red_frames([0.9])[0]}
    with caplog.at_level(logging.WARNING):
        assert labeler.label(frame, "make it red") is None
    assert "not one of" in caplog.text
    with pytest.raises(VLMAnswerError, match="no value for images"):
        parse_progress("Image 1: 20%\nImage 3: 50%", 3)
    url = server.url
    server.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert labeler.label({"front": red_frames([0.8])[0]}, "make it red") is None
    assert "cannot reach" in caplog.text
    with pytest.raises(ValueError, match="no VLM server answers"):
        make_backend(f"{url}#judge")
    with pytest.raises(ValueError, match="name the served model"):
        make_backend(url)


def test_vlm_preferences_train_a_bradley_terry_reward_that_ranks_frames_like_the_judge(judge, tmp_path):
    from robot_rl.rewards.preference import (
        PreferenceConfig,
        Preferences,
        collect_preferences,
        load_preference_reward,
        save_preference_reward,
        train_preference_reward,
    )

    levels = np.random.default_rng(1).uniform(0, 1, 120)
    frames = FrameDataset({"front": red_frames(levels, size=32)}, levels >= 0.8, np.arange(120) // 6, "redden")
    queries = VLMQueries(make_backend(f"{judge.url}#judge"))
    prefs = collect_preferences(queries, frames, "make it red", pairs=300, seed=0)
    assert len(prefs.first) == 300
    expected = np.array([redness(frames.images["front"][i]) > redness(frames.images["front"][j])
                         for i, j in zip(prefs.first, prefs.second)])
    assert np.mean((prefs.p_first > 0.5) == expected) > 0.97
    prefs = Preferences.load(prefs.save(tmp_path / "prefs.npz"))
    model, report = train_preference_reward(frames, prefs, PreferenceConfig(ensemble=2, updates=300))
    assert report["val_agreement"] >= 0.85 and report["success_auroc"] >= 0.9, report
    labeler = load_preference_reward(save_preference_reward(tmp_path / "pref.pt", model, report))
    rewards = [labeler.label({"front": f}).reward for f in red_frames([0.05, 0.5, 0.95], size=32)]
    assert rewards[0] < rewards[1] < rewards[2]


def test_gvl_progress_is_asked_shuffled_returned_in_time_order_with_its_value_order_correlation(judge):
    queries = VLMQueries(make_backend(f"{judge.url}#judge"))
    levels = np.linspace(0, 1, 9)
    frames = red_frames(levels)
    progress = queries.estimate_progress(frames, "make it red", seed=3)
    np.testing.assert_allclose(progress, levels[1:], atol=0.02)
    shown = [c for c in judge.requests[-1]["messages"][0]["content"] if c["type"] == "image_url"]
    from tests.vlm_server import _decode

    shown_levels = [redness(_decode(c["image_url"]["url"])) for c in shown[1:]]
    assert not np.all(np.diff(shown_levels) > 0)  # the model saw them out of order
    assert value_order_correlation(progress) == pytest.approx(1.0)
    assert value_order_correlation(progress[::-1]) == pytest.approx(-1.0)
    labeler = VLMProgress(queries, max_frames=5)
    labels = labeler.label_episode({"front": frames}, "make it red")
    assert len(labels) == 8 and labels[-1].success and not labels[0].success
    assert np.all(np.diff([label.reward for label in labels]) >= -1e-9) and labeler.last_voc == pytest.approx(1.0)


# -- relabelling stored episodes -------------------------------------------------------------------
def _record_episodes(directory, levels_per_episode):
    from robot_rl.recording import EpisodeRecorder

    recorder = EpisodeRecorder(directory, task="PickCube-v0", action_dim=1)
    for levels in levels_per_episode:
        frames = red_frames(levels)
        recorder.start({"images": {"front": frames[0]}, "proprio": np.zeros(2, np.float32)})
        for t in range(1, len(frames)):
            last = t == len(frames) - 1
            recorder.step(np.zeros(1), 0.0, {"images": {"front": frames[t]}, "proprio": np.zeros(2, np.float32)},
                          terminated=False, truncated=last, info={"success": bool(levels[-1] > 0.5)})


def test_relabel_copies_episodes_with_the_labelers_rewards_and_provenance_and_resumes(judge, tmp_path):
    from robot_rl.episodes import episode_files, load_episode
    from robot_rl.rewards.relabel import relabel_directory

    source, out = tmp_path / "episodes", tmp_path / "relabelled"
    _record_episodes(source, [np.linspace(0, 1, 6), np.linspace(0, 0.3, 5), np.linspace(0.2, 0.9, 7)])
    labeler = VLMSuccess(VLMQueries(make_backend(f"{judge.url}#judge")))
    summary = relabel_directory(source, out, labeler, "make it red")
    assert summary["relabelled"] == 3 and summary["agree_with_recorded_success"] == 3
    for path in episode_files(out):
        episode, original = load_episode(path), load_episode(source / path.name)
        expected = [float(redness(f) >= 0.5) for f in episode.observations["images/front"][1:]]
        np.testing.assert_array_equal(episode.reward, expected)
        assert set(episode.sources()) <= {labeler.name} and np.all(original.reward == 0)
        relabel = episode.extra["relabel"]
        assert relabel["labeler"] == labeler.name and relabel["threshold"] == 0.5 and len(relabel["prompt_sha256"]) == 16
    assert json.loads((out / "relabel.json").read_text())["provenance"]["task"] == "make it red"
    episode_files(out)[1].unlink()  # an interrupted run: one copy missing
    asked = len(judge.requests)
    again = relabel_directory(source, out, labeler, "make it red")
    assert again["relabelled"] == 1 and again["skipped"] == 2 and len(judge.requests) == asked  # answers cached
    with pytest.raises(ValueError, match="another directory"):
        relabel_directory(source, source, labeler, "x")


def test_relabel_cli_with_gvl_progress_over_http(judge, tmp_path):
    from robot_rl.cli import main
    from robot_rl.episodes import episode_files, load_episode

    source, out = tmp_path / "episodes", tmp_path / "progress"
    _record_episodes(source, [np.linspace(0, 1, 8)])
    assert main(["rewards", "relabel", "--episodes-dir", str(source), "--out", str(out), "--progress",
                 "--model", f"vlm:{judge.url}#judge", "--prompt", "make it red", "--max-frames", "8"]) == 0
    episode = load_episode(episode_files(out)[0])
    np.testing.assert_allclose(episode.reward, np.linspace(0, 1, 8)[1:], atol=0.02)
    assert episode.extra["relabel"]["value_order_correlation"] == pytest.approx(1.0)


# -- training with a language-conditioned reward --------------------------------------------------
def test_training_with_a_clip_reward_and_with_a_vlm_reward_over_http(judge, tmp_path):
    from robot_rl.train import TrainConfig, Trainer

    path = make_tiny_clip(tmp_path / "clip")
    base = dict(image_size=32, total_env_steps=60, random_steps=30, num_demos=1, eval_every=60, eval_episodes=1,
                tensorboard=False, progress=False)
    base["agent"] = {"batch_size": 16, "utd": 1}
    result = Trainer(TrainConfig(out_dir=str(tmp_path / "clip_run"), reward={"model": f"clip:{path}"}, **base)).run()
    assert result["env_steps"] == 60
    trainer = Trainer(TrainConfig(out_dir=str(tmp_path / "vlm_run"),
                                  reward={"model": f"vlm:{judge.url}#judge", "review_every": 5}, **base))
    trainer.run()
    asked = [r for r in judge.requests if "Answer Yes or No" in r["messages"][0]["content"][0]["text"]]
    assert len(asked) >= 50 and instruction_for("PickCube-v0") in asked[0]["messages"][0]["content"][0]["text"]
    reviewed = FrameDataset.load(tmp_path / "vlm_run" / "reward_frames.npz")
    assert len(reviewed) >= 10 and reviewed.cameras == ("front",)
    with pytest.raises(ValueError, match="reward.model"):
        TrainConfig(reward={"model": "success.onnx"})


def test_label_is_a_plain_value():
    assert Label(reward=1.0, success=True).confidence is None
