"""One config, one spec grammar and one registry for every labeler, so training, relabelling, evaluation
and the ROS 2 reward node all accept the same model spec:

    PATH.pt                      a success classifier or preference reward model (format read from the file)
    clip:ID_OR_DIR               VLM-RM zero-shot reward from a CLIP/SigLIP checkpoint
    vlm:ID_OR_DIR                "has the task been completed?" asked to a local transformers VLM
    vlm:http://HOST:PORT/v1#NAME the same question to an OpenAI-compatible server serving model NAME
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from robot_rl.rewards.base import Labeler


@dataclass(frozen=True)
class RewardModelConfig:
    model: str | None = None  # the spec above; None: the environment's own reward
    prompt: str | None = None  # the task sentence; None: the task's INSTRUCTION
    cameras: tuple[str, ...] = ()  # () : the model's own (a classifier's), else ("front",)
    threshold: float | None = None  # success threshold; None: the model's calibrated one (VLM: P(yes) 0.5)
    hysteresis: int = 1  # consecutive frames above the threshold before success
    baseline: str = "a robot arm"  # VLM-RM baseline prompt
    alpha: float = 0.5  # VLM-RM projection strength
    cache: str | None = None  # SQLite file of VLM answers, reused across runs
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding an HTTP endpoint's key, if any
    # Keep the frames the reward model judged (all its successes, every k-th other frame) with the
    # simulator's true label in reward_frames.npz, to retrain it on its false positives (0: off).
    review_every: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not (isinstance(self.hysteresis, int) and self.hysteresis >= 1):
            raise ValueError(f"reward.hysteresis must be an integer >= 1, got {self.hysteresis!r}")
        if not (isinstance(self.review_every, int) and self.review_every >= 0):
            raise ValueError(f"reward.review_every must be an integer >= 0 (0 turns it off), got {self.review_every!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"reward.alpha must be in [0, 1], got {self.alpha}")
        if self.model is not None:
            parse_spec(self.model)


def parse_spec(spec: str) -> tuple[str, str]:
    """`reward.model` -> (scheme, source): ("file", PATH) for a trained model file, else the registered
    scheme before the first colon and what follows it."""
    scheme, colon, source = spec.partition(":")
    if colon and scheme in SCHEMES:
        return scheme, source
    if spec.endswith(".pt"):
        return "file", spec
    raise ValueError(f"reward.model {spec!r} must be PATH.pt (classifier or preference model) or "
                     f"SCHEME:SOURCE with a registered scheme ({', '.join(sorted(SCHEMES))}; clip/vlm take a "
                     f"directory, hub id, or for vlm http://HOST/v1#NAME)")


def _from_file(path: str, cfg: RewardModelConfig) -> Labeler:
    from robot_rl.rewards.checkpoints import read_payload

    # Read once, then dispatch on the format (a model file can be tens of MB).
    try:
        payload = read_payload(path, "reward model", "robot-rl rewards train-classifier` or "
                                                     "`robot-rl rewards train-preference")
    except ValueError as err:
        raise ValueError(f"reward.model: {err}") from err
    fmt = str(payload.get("format", ""))
    if fmt.startswith("robot_rl.success_classifier"):
        from robot_rl.rewards.classifier import load_classifier

        return load_classifier(path, hysteresis=cfg.hysteresis, threshold=cfg.threshold, payload=payload)
    if fmt.startswith("robot_rl.preference_reward"):
        from robot_rl.rewards.preference import load_preference_reward

        return load_preference_reward(path, threshold=cfg.threshold, payload=payload)
    raise ValueError(f"reward.model: {path} is neither a success classifier nor a preference reward model")


def _clip(source: str, cfg: RewardModelConfig) -> Labeler:
    from robot_rl.rewards.clip import ClipReward, HFClipEncoder

    return ClipReward(HFClipEncoder(source), baseline=cfg.baseline, alpha=cfg.alpha, cameras=cfg.cameras or ("front",),
                      goal=cfg.prompt, threshold=cfg.threshold, hysteresis=cfg.hysteresis)


def _vlm(source: str, cfg: RewardModelConfig) -> Labeler:
    import os

    from robot_rl.rewards.vlm import QueryCache, VLMQueries, VLMSuccess, make_backend

    backend = make_backend(source, api_key=os.environ.get(cfg.api_key_env))
    queries = VLMQueries(backend, QueryCache(cfg.cache))
    return VLMSuccess(queries, cameras=cfg.cameras or ("front",),
                      threshold=cfg.threshold if cfg.threshold is not None else 0.5, hysteresis=cfg.hysteresis)


# scheme -> builder(source, config); "file" is a trained model file whose format picks the labeler.
SCHEMES: dict[str, Callable[[str, RewardModelConfig], Labeler]] = {"file": _from_file, "clip": _clip, "vlm": _vlm}


def register_labeler(scheme: str, builder: Callable[[str, RewardModelConfig], Labeler]) -> None:
    """A new model-spec scheme: `reward.model=SCHEME:SOURCE` then builds `builder(SOURCE, config)`."""
    SCHEMES[scheme] = builder


def make_labeler(cfg: RewardModelConfig) -> Labeler:
    if cfg.model is None:
        raise ValueError("reward.model is not set")
    scheme, source = parse_spec(cfg.model)
    return SCHEMES[scheme](source, cfg)
