"""Reward labeler figures: success-classifier quality on sim frames, the cost of each labeler on CPU,
and SAC trained with a classifier as its only reward (HIL-SERL's loop, the simulator as the operator).

    python benchmarks/rewards.py [--quick] [--out FILE.json] [--parts quality speed training]

- quality: per task (pick-cube, peg insertion), a classifier trained on scripted-expert frames (4 noise
  levels, 48 px, front + wrist), held-out accuracy / precision / recall / AUROC on 25% of the episodes,
  and AUROC on fresh episodes of other seeds.
- speed: frames/s in batches and ms per single-frame label (the latency a labeler adds to a control step
  when run inline; the ROS 2 reward node runs it on a worker instead) for the classifier, CLIP ViT-B/32 and
  SigLIP base/16 (their real architectures with random weights: cost, not quality; no weights can be
  downloaded here), a LLaVA-style VLM of 0.45B parameters (CLIP ViT-B/32 and a 24-layer text model shaped
  like Qwen2-0.5B with a small vocabulary; random, full mode only), and the HTTP backend's client overhead
  against a loopback server (PNG encoding + HTTP; the server's model time excluded).
- training: rounds of (train a classifier; train SAC on pick-cube from state with it as the only reward;
  add the frames the classifier judged, labelled by the simulator, to its data) until the policy's true
  success reaches 90%, reporting claimed vs true successes per round.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/: the loopback server and tokenizer
from report import report


def quality(tasks: list[str], episodes: int, updates: int) -> dict:
    from robot_rl.rewards.classifier import ClassifierConfig, metrics, train_classifier
    from robot_rl.rewards.frames import record_sim_frames

    results = {}
    for task in tasks:
        name = task.split("-")[0].lower()
        started = time.perf_counter()
        data = record_sim_frames(task, episodes, image_size=48, seed=7)
        record_s = time.perf_counter() - started
        model, rep = train_classifier(data, ClassifierConfig(updates=updates))
        fresh = record_sim_frames(task, max(episodes // 4, 8), image_size=48, seed=1234)
        fresh_metrics = metrics(model.probabilities(fresh.images), fresh.labels, rep["threshold"])
        results.update({f"{name}_frames": len(data), f"{name}_positive_frames": int(data.labels.sum()),
                        f"{name}_record_s": record_s, f"{name}_train_s": rep["train_s"],
                        f"{name}_val_accuracy": rep["val_accuracy"], f"{name}_val_precision": rep["val_precision"],
                        f"{name}_val_recall": rep["val_recall"], f"{name}_val_auroc": rep["val_auroc"],
                        f"{name}_fresh_seed_auroc": fresh_metrics["auroc"],
                        f"{name}_fresh_seed_accuracy": fresh_metrics["accuracy"]})
    return results


def _time_labeler(name: str, label_one, score_batch, frames: np.ndarray, singles: int) -> dict:
    label_one(frames[0])  # warm-up
    times = []
    for i in range(singles):
        started = time.perf_counter()
        label_one(frames[i % len(frames)])
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    score_batch(frames)
    batch_s = time.perf_counter() - started
    ms = 1e3 * np.array(times)
    return {f"{name}_label_ms_p50": float(np.percentile(ms, 50)), f"{name}_label_ms_p99": float(np.percentile(ms, 99)),
            f"{name}_batch_frames_per_s": len(frames) / batch_s}


def speed(quick: bool) -> dict:
    import torch
    import transformers

    from robot_rl.rewards.classifier import ClassifierLabeler, SuccessClassifier
    from robot_rl.rewards.clip import ClipReward, HFClipEncoder
    from robot_rl.rewards.vlm import OpenAIVLM, TransformersVLM, VLMQueries, VLMSuccess

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    results = {"speed_torch_threads": 1}
    singles = 20 if quick else 100
    frames48 = rng.integers(0, 256, (64, 48, 48, 3), dtype=np.uint8)
    frames224 = rng.integers(0, 256, (32 if quick else 64, 224, 224, 3), dtype=np.uint8)

    model = SuccessClassifier(("front", "wrist"), 48)
    classifier = ClassifierLabeler(model, 0.5)
    results.update(_time_labeler("classifier_48px_2cams", lambda f: classifier.label({"front": f, "wrist": f}),
                                 lambda fs: model.probabilities({"front": fs, "wrist": fs}), frames48, singles))

    with tempfile.TemporaryDirectory() as tmp:
        for name, model_cls, config in (("clip_vit_b32", transformers.CLIPModel, transformers.CLIPConfig()),
                                        ("siglip_base16", transformers.SiglipModel, transformers.SiglipConfig())):
            torch.manual_seed(0)
            path = Path(tmp) / name
            model_cls(config).save_pretrained(path)
            _save_processors(name, path)
            encoder = HFClipEncoder(str(path))
            labeler = ClipReward(encoder, cameras=("front",))
            results.update(_time_labeler(name, lambda f, lab=labeler: lab.label({"front": f}, "pick up the cube"),
                                         lambda fs, lab=labeler: lab.rewards({"front": fs}, "pick up the cube"),
                                         frames224, max(singles // 2, 10)))
            results[f"{name}_parameters_m"] = sum(p.numel() for p in encoder.model.parameters()) / 1e6

        from tests.vlm_server import JudgeServer  # a real HTTP server on loopback

        server = JudgeServer()
        try:
            http = VLMSuccess(VLMQueries(OpenAIVLM(server.url, "judge")), cameras=("front",))
            results.update(_time_labeler("http_client_overhead_224px",
                                         lambda f: http.queries.backend.choice_probabilities([f], "Answer Yes or No.",
                                                                                              ("Yes", "No")),
                                         lambda fs: [http.queries.backend.choice_probabilities(
                                             [f], "Answer Yes or No.", ("Yes", "No")) for f in fs],
                                         frames224, singles))
        finally:
            server.close()

        if not quick:
            path = Path(tmp) / "llava"
            _save_llava(path)
            vlm = VLMSuccess(VLMQueries(TransformersVLM(str(path))), cameras=("front",))
            results.update(_time_labeler("llava_450m", lambda f: vlm.queries.backend.choice_probabilities(
                [f], "Has the task been completed? Answer Yes or No.", ("Yes", "No")),
                lambda fs: [vlm.queries.backend.choice_probabilities([f], "Answer Yes or No.", ("Yes", "No"))
                            for f in fs[:8]], frames224[:8], 5))
            results["llava_450m_parameters_m"] = sum(p.numel() for p in vlm.queries.backend.model.parameters()) / 1e6
    return results


def _save_processors(name: str, path: Path) -> None:
    """A tokenizer and image processor of the model's real input size (224), built here."""
    import transformers

    from tests.vlm_fixtures import _word_tokenizer  # a small word-level vocabulary: cost is in the model

    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=_word_tokenizer(["<pad>", "<unk>", "<s>", "</s>"],
                                                                                     lowercase=True),
                                                     pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                                     eos_token="</s>", model_max_length=64)
    tokenizer.save_pretrained(path)
    processor_cls = transformers.SiglipImageProcessorPil if "siglip" in name else transformers.CLIPImageProcessorPil
    kwargs = {"size": {"height": 224, "width": 224}} if "siglip" in name else {
        "size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}
    processor_cls(**kwargs).save_pretrained(path)


def _save_llava(path: Path) -> None:
    """LLaVA with CLIP ViT-B/32 vision and a 0.5B-class Llama text model (random): a small local VLM's cost."""
    import torch
    import transformers

    from tests.vlm_fixtures import make_tiny_vlm

    make_tiny_vlm(path)  # its tokenizer, chat template and processor; then a full-size model over them
    processor = transformers.AutoProcessor.from_pretrained(path)
    tiny = transformers.AutoConfig.from_pretrained(path)
    vision = transformers.CLIPVisionConfig(image_size=224, patch_size=32)
    text = transformers.LlamaConfig(vocab_size=tiny.text_config.vocab_size, hidden_size=896, intermediate_size=4864,
                                    num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                    bos_token_id=tiny.text_config.bos_token_id,
                                    eos_token_id=tiny.text_config.eos_token_id,
                                    pad_token_id=tiny.text_config.pad_token_id)
    config = transformers.LlavaConfig(vision_config=vision, text_config=text, image_token_index=tiny.image_token_index,
                                      vision_feature_select_strategy="default", vision_feature_layer=-2)
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.image_processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": 224},
                                                                   crop_size={"height": 224, "width": 224})
    processor.patch_size, processor.num_additional_image_tokens = 32, 1
    processor.vision_feature_select_strategy = "default"
    processor.save_pretrained(path)


def training(root: Path, rounds: int, steps: int, hysteresis: int, episodes: int, updates: int) -> dict:
    from robot_rl.rewards.classifier import ClassifierConfig, save_classifier, train_classifier
    from robot_rl.rewards.frames import FrameDataset, record_sim_frames

    data = record_sim_frames("PickCube-v0", episodes, image_size=48, seed=7)
    results: dict[str, object] = {"training_env_steps_per_round": steps, "training_hysteresis": hysteresis}
    per_round = []
    for r in range(rounds):
        model, rep = train_classifier(data, ClassifierConfig(updates=updates, seed=r))
        save_classifier(root / f"classifier{r}.pt", model, rep)
        out = root / f"run{r}"
        run = subprocess.run([sys.executable, "-m", "robot_rl.cli", "train", "--out", str(out), "--set",
                              "task=PickCube-v0", "image_size=48", f"total_env_steps={steps}", "tensorboard=false",
                              "progress=false", f"reward.model={root / f'classifier{r}.pt'}",
                              f"reward.hysteresis={hysteresis}"], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"training round {r} failed: {run.stderr[-2000:]}")
        episodes_log = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
        evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
        last = episodes_log[-50:]
        row = {"round": r, "classifier_frames": len(data), "classifier_val_auroc": rep["val_auroc"],
               "classifier_val_precision": rep["val_precision"], "episodes": len(episodes_log),
               "claimed_successes": sum(e["success"] for e in episodes_log),
               "true_successes": sum(e["true_success"] for e in episodes_log),
               "last50_claimed": sum(e["success"] for e in last), "last50_true": sum(e["true_success"] for e in last),
               "eval_true_success": [e["success_rate"] for e in evals]}
        per_round.append(row)
        print(json.dumps(row), flush=True)
        if max(row["eval_true_success"][-2:]) >= 0.9:
            break
        reviewed = FrameDataset.load(out / "reward_frames.npz")
        data = FrameDataset.concat(data, reviewed)
    results["training_rounds"] = per_round
    results["training_rounds_run"] = len(per_round)
    results["training_final_true_success"] = per_round[-1]["eval_true_success"][-1]
    results["training_reached_90pct"] = max(per_round[-1]["eval_true_success"][-2:]) >= 0.9
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="16 episodes per task, 300 updates, short speed runs, one 1,500-step training round")
    parser.add_argument("--out", default=None)
    parser.add_argument("--parts", nargs="+", default=["quality", "speed", "training"],
                        choices=["quality", "speed", "training"])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    results: dict[str, object] = {"quick": args.quick}
    if "quality" in args.parts:
        results.update(quality(["PickCube-v0", "PegInsertion-v0"], 16 if args.quick else 40,
                               300 if args.quick else 800))
    if "speed" in args.parts:
        results.update(speed(args.quick))
    if "training" in args.parts:
        with tempfile.TemporaryDirectory(prefix="rewards_") as tmp:
            results.update(training(Path(tmp), 1 if args.quick else args.rounds, 1_500 if args.quick else 8_000,
                                    hysteresis=2, episodes=16 if args.quick else 40, updates=300 if args.quick else 800))
    report(results, args.out)


if __name__ == "__main__":
    main()
