"""Rewards from a vision-language model asked questions about camera images.

Two backends answer the same questions:
- `TransformersVLM`: a local `transformers` image-text-to-text model (directory or hub id), on CPU;
- `OpenAIVLM`: any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server, a hosted API).

Three questions, each cached by (model, question, prompt, image bytes) so re-running a relabel or an
evaluation asks nothing twice:
- `VLMSuccess` (a Labeler): "has the task been completed?" -> P(yes), from the answer token's
  probability (logits locally, `logprobs` over HTTP where the server returns them);
- `prefer(a, b)` (RL-VLM-F): "which image shows more progress?" -> P(first), the labels of a
  Bradley-Terry reward model (robot_rl.rewards.preference);
- `estimate_progress(frames)` (GVL): the frames of an episode, shuffled, each given a completion
  percentage; unshuffled, their rank correlation with time (value-order correlation) says whether the
  model understood the task.
An answer that cannot be parsed raises `VLMAnswerError`; a labeler turns it into "no label", logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import sqlite3
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from robot_rl.rewards.base import EpisodeLabeler, Hysteresis, Label, Labeler
from robot_rl.rewards.hf import load_pretrained

log = logging.getLogger(__name__)

SUCCESS_PROMPT = ("The robot's task: {task}. Look at the image. Has the task been completed? Answer Yes or No.")
PREFERENCE_PROMPT = ("The robot's task: {task}. Which image shows more progress towards completing the task, "
                     "image 1 or image 2? Answer 1 or 2.")
PROGRESS_PROMPT = ("The robot's task: {task}. Image 0 shows the start of an episode, at 0% progress. The next {n} "
                   "images are frames of the same episode in random order. For each of them estimate how much of "
                   "the task has been completed, from 0% to 100%. Answer with one line per image, exactly in the "
                   "form 'Image 1: 40%'.")


class VLMError(RuntimeError):
    """The model could not be asked (endpoint unreachable, HTTP error, bad response)."""


class VLMAnswerError(VLMError):
    """The model answered, but not in a form the question accepts."""


class VLMBackend(Protocol):
    name: str

    def choice_probabilities(self, images: list[np.ndarray], prompt: str, choices: tuple[str, ...]) -> dict[str, float]:
        """P(each choice) as the answer's first token, normalised over the choices."""
        ...

    def generate(self, images: list[np.ndarray], prompt: str, max_tokens: int) -> str:
        ...


# -- the cache -------------------------------------------------------------------------------------
def query_key(model: str, kind: str, prompt: str, images: list[np.ndarray]) -> str:
    digest = hashlib.sha256(f"{model}\0{kind}\0{prompt}".encode())
    for image in images:
        image = np.ascontiguousarray(image)
        digest.update(f"\0{image.shape}{image.dtype}".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


class QueryCache:
    """JSON answers by query key, in SQLite (one file, safe across processes and crashes) or in memory."""

    def __init__(self, path: str | Path | None = None):
        self.path = str(path) if path is not None else ":memory:"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str):
        with self._lock:
            row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, json.dumps(value)))
            self._db.commit()

    def close(self) -> None:
        self._db.close()


# -- backends ---------------------------------------------------------------------------------------
def _match_choice(text: str, choices: tuple[str, ...]) -> str | None:
    word = re.sub(r"[^a-z0-9]", "", text.strip().lower())
    for choice in choices:
        if word and word == choice.lower():
            return choice
    return None


class TransformersVLM:
    """A local image-text-to-text model (LLaVA, Qwen2-VL, SmolVLM, ...), prompted with its chat template."""

    def __init__(self, model_id: str, torch_threads: int | None = None):
        import transformers

        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self.name = model_id
        self.processor = load_pretrained(transformers.AutoProcessor, model_id, "processor")
        self.model = load_pretrained(transformers.AutoModelForImageTextToText, model_id, "vision-language model").eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None or getattr(self.processor, "chat_template", None) is None:
            raise ValueError(f"{model_id}'s processor has no tokenizer or chat template: not a chat VLM")

    def _inputs(self, images: list[np.ndarray], prompt: str):
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        return self.processor(images=[np.asarray(im) for im in images] or None, text=text, return_tensors="pt")

    def _choice_token(self, choice: str) -> int:
        for form in (choice, " " + choice):  # tokenizers differ on whether the answer starts with a space
            ids = self.tokenizer.encode(form, add_special_tokens=False)
            if len(ids) == 1:
                return ids[0]
        return self.tokenizer.encode(choice, add_special_tokens=False)[0]

    @torch.no_grad()
    def choice_probabilities(self, images, prompt, choices):
        ids = [self._choice_token(c) for c in choices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"the answers {choices} start with the same token for {self.name}")
        logits = self.model(**self._inputs(images, prompt)).logits[0, -1].float()
        p = torch.softmax(logits[ids], dim=0).numpy()
        return {c: float(v) for c, v in zip(choices, p)}

    @torch.no_grad()
    def generate(self, images, prompt, max_tokens):
        inputs = self._inputs(images, prompt)
        out = self.model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _png_data_url(image: np.ndarray) -> str:
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode an image of shape {np.shape(image)} as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode()


class OpenAIVLM:
    """An OpenAI-compatible `/chat/completions` endpoint, e.g. `http://localhost:8000/v1` (vLLM) or
    `http://localhost:11434/v1` (Ollama). Images go inline as PNG data URLs. Answer probabilities come
    from the first token's `top_logprobs`; a server that returns none gives P = 1 for the answer it
    wrote (recorded as `calibrated: false`)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 30.0):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the VLM endpoint must be an http(s) URL like http://localhost:8000/v1, got {base_url!r}")
        self.base_url, self.model, self.api_key, self.timeout_s = base_url.rstrip("/"), model, api_key, timeout_s
        self.name = f"{model}@{self.base_url}"
        self.calibrated = True

    def _post(self, payload: dict) -> dict:
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise VLMError(f"{self.base_url} answered HTTP {err.code}: {err.read()[:200].decode(errors='replace')}") from err
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise VLMError(f"cannot reach the VLM endpoint {self.base_url}: {getattr(err, 'reason', err)}") from err
        except json.JSONDecodeError as err:
            raise VLMError(f"{self.base_url} did not answer JSON: {err}") from err

    def check(self) -> None:
        """Fail now, with a clear message, if nothing answers at the endpoint."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=self.timeout_s):
                pass
        except urllib.error.HTTPError:
            pass  # something answers; not every server lists models
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise ValueError(f"no VLM server answers at {self.base_url} ({getattr(err, 'reason', err)}): start "
                             f"one (e.g. `vllm serve MODEL` or `ollama serve`) or fix the URL") from err

    def _complete(self, images, prompt, max_tokens, logprobs: bool) -> dict:
        content = [{"type": "text", "text": prompt}] + [{"type": "image_url", "image_url": {"url": _png_data_url(im)}}
                                                       for im in images]
        payload = {"model": self.model, "messages": [{"role": "user", "content": content}],
                   "max_tokens": max_tokens, "temperature": 0.0}
        if logprobs:
            payload.update(logprobs=True, top_logprobs=10)
        response = self._post(payload)
        try:
            return response["choices"][0]
        except (KeyError, IndexError, TypeError) as err:
            raise VLMError(f"{self.base_url} sent no choices: {str(response)[:200]}") from err

    def choice_probabilities(self, images, prompt, choices):
        choice = self._complete(images, prompt, max_tokens=1, logprobs=True)
        first = ((choice.get("logprobs") or {}).get("content") or [None])[0]
        if first and first.get("top_logprobs"):
            mass = dict.fromkeys(choices, 0.0)
            for entry in first["top_logprobs"]:
                matched = _match_choice(entry.get("token", ""), choices)
                if matched is not None:
                    mass[matched] += float(np.exp(entry["logprob"]))
            total = sum(mass.values())
            if total > 0:
                return {c: m / total for c, m in mass.items()}
        text = (choice.get("message") or {}).get("content") or ""
        matched = _match_choice(text.split()[0] if text.split() else "", choices)
        if matched is None:
            raise VLMAnswerError(f"{self.name} answered {text!r}, not one of {list(choices)}")
        self.calibrated = False
        return {c: float(c == matched) for c in choices}

    def generate(self, images, prompt, max_tokens):
        message = self._complete(images, prompt, max_tokens, logprobs=False).get("message") or {}
        return message.get("content") or ""


def make_backend(spec: str, api_key: str | None = None) -> VLMBackend:
    """`http(s)://HOST/v1#MODEL` -> OpenAIVLM (MODEL after '#'), anything else a transformers model."""
    if spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        if not model:
            raise ValueError(f"name the served model after '#': {url}#MODEL_NAME")
        backend = OpenAIVLM(url, model, api_key=api_key)
        backend.check()
        return backend
    return TransformersVLM(spec)


# -- the questions ----------------------------------------------------------------------------------
class VLMQueries:
    """The three questions against one backend, with the cache."""

    def __init__(self, backend: VLMBackend, cache: QueryCache | None = None):
        self.backend, self.cache = backend, cache if cache is not None else QueryCache()

    def _cached(self, kind: str, images: list[np.ndarray], prompt: str, ask):
        key = query_key(self.backend.name, kind, prompt, images)
        value = self.cache.get(key)
        if value is None:
            value = ask()
            self.cache.put(key, value)
        return value

    def success_probability(self, images: list[np.ndarray], task: str, prompt: str = SUCCESS_PROMPT) -> float:
        text = prompt.format(task=task)
        p = self._cached("success", images, text, lambda: self.backend.choice_probabilities(images, text, ("Yes", "No")))
        return float(p["Yes"])

    def prefer(self, first: np.ndarray, second: np.ndarray, task: str, prompt: str = PREFERENCE_PROMPT) -> float:
        """P(the first image shows more progress than the second)."""
        text = prompt.format(task=task)
        p = self._cached("preference", [first, second], text,
                         lambda: self.backend.choice_probabilities([first, second], text, ("1", "2")))
        return float(p["1"])

    def estimate_progress(self, frames: np.ndarray, task: str, seed: int = 0, prompt: str = PROGRESS_PROMPT,
                          max_tokens: int | None = None) -> np.ndarray:
        """Progress in [0, 1] of each of frames[1:] (frames[0] is the 0% reference), asked in a shuffled
        order so the model cannot read progress off the order; returned in time order."""
        frames = np.asarray(frames)
        if len(frames) < 2:
            raise ValueError("estimate_progress needs the first frame and at least one more")
        order = np.random.default_rng(seed).permutation(len(frames) - 1) + 1
        shown = [frames[0]] + [frames[i] for i in order]
        text = prompt.format(task=task, n=len(order))
        answer = self._cached("progress", shown, text,
                              lambda: self.backend.generate(shown, text, max_tokens or 12 * len(order) + 16))
        values = parse_progress(answer, len(order))
        progress = np.empty(len(order))
        progress[order - 1] = values
        return progress


def parse_progress(answer: str, n: int) -> np.ndarray:
    """'Image 3: 40%' lines -> fractions for images 1..n; every image must be answered."""
    found = {}
    for index, value in re.findall(r"image\s*(\d+)\s*[:=-]\s*(\d+(?:\.\d+)?)\s*%?", answer, flags=re.IGNORECASE):
        found[int(index)] = min(max(float(value) / 100.0, 0.0), 1.0)
    missing = [i for i in range(1, n + 1) if i not in found]
    if missing:
        raise VLMAnswerError(f"the progress answer has no value for images {missing[:5]}"
                             f"{'...' if len(missing) > 5 else ''}: {answer[:120]!r}")
    return np.array([found[i] for i in range(1, n + 1)])


def value_order_correlation(values: np.ndarray) -> float:
    """GVL's VOC: Spearman rank correlation between predicted progress and time (1: perfectly ordered)."""
    values = np.asarray(values, float)
    if len(values) < 2:
        raise ValueError("value-order correlation needs at least two frames")

    def ranks(x):
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r

    a, b = ranks(values), ranks(np.arange(len(values), dtype=float))
    if a.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


class VLMSuccess(Labeler):
    """A Labeler: P(yes) to "has the task been completed?" for one camera's image (or several, asked
    together); success once P(yes) >= threshold for `hysteresis` frames; reward 1 on success."""

    def __init__(self, queries: VLMQueries, cameras: tuple[str, ...] = ("front",), threshold: float = 0.5,
                 hysteresis: int = 1, prompt: str = SUCCESS_PROMPT):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if "{task}" not in prompt:
            raise ValueError("the success prompt must contain {task}")
        self.queries, self.cameras, self.threshold = queries, tuple(cameras), threshold
        self.hysteresis, self.prompt = Hysteresis(hysteresis), prompt
        self.name = f"vlm:{queries.backend.name}"

    def provenance(self, task: str = "") -> dict:
        return {"labeler": self.name, "prompt": self.prompt.format(task=task),
                "prompt_sha256": hashlib.sha256(self.prompt.format(task=task).encode()).hexdigest()[:16],
                "threshold": self.threshold, "cameras": list(self.cameras)}

    def reset(self) -> None:
        self.hysteresis.reset()

    def probability(self, images: dict[str, np.ndarray], task: str) -> float:
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise ValueError(f"the VLM labeler reads cameras {list(self.cameras)}; missing {missing}")
        return self.queries.success_probability([images[c] for c in self.cameras], task, self.prompt)

    def label(self, images: dict[str, np.ndarray], task: str = "") -> Label | None:
        try:
            p = self.probability(images, task)
        except VLMError as err:  # unreachable, or an answer that is neither yes nor no
            log.warning("%s: no label: %s", self.name, err)
            self.hysteresis.reset()
            return None
        success = self.hysteresis.update(p >= self.threshold)
        return Label(reward=float(success), success=success, confidence=p)



class VLMProgress(EpisodeLabeler):
    """GVL as an episode labeler (offline relabelling): up to `max_frames` frames of the episode, the first
    as the 0% reference, get a progress estimate; every step's reward is its progress, interpolated in
    time; success where progress >= `threshold`. `last_voc` is the episode's value-order correlation."""

    def __init__(self, queries: VLMQueries, camera: str = "front", max_frames: int = 12, threshold: float = 0.95,
                 seed: int = 0, prompt: str = PROGRESS_PROMPT):
        if max_frames < 2:
            raise ValueError(f"max_frames must be >= 2, got {max_frames}")
        self.queries, self.camera, self.max_frames = queries, camera, max_frames
        self.threshold, self.seed, self.prompt = threshold, seed, prompt
        self.cameras = (camera,)
        self.name = f"gvl:{queries.backend.name}"
        self.last_voc: float | None = None

    def provenance(self, task: str = "") -> dict:
        text = self.prompt.format(task=task, n="N")
        return {"labeler": self.name, "prompt": text, "prompt_sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
                "threshold": self.threshold, "max_frames": self.max_frames, "seed": self.seed, "cameras": [self.camera]}

    def progress(self, frames: np.ndarray, task: str) -> np.ndarray:
        """Progress of every frame (T+1,) in [0, 1]; frame 0 is 0 by definition."""
        frames = np.asarray(frames)
        picked = np.unique(np.linspace(0, len(frames) - 1, min(self.max_frames, len(frames))).round().astype(int))
        values = np.concatenate([[0.0], self.queries.estimate_progress(frames[picked], task, self.seed, self.prompt)])
        self.last_voc = value_order_correlation(values[1:]) if len(values) > 2 else None
        return np.interp(np.arange(len(frames)), picked, values)

    def label_episode(self, images: dict[str, np.ndarray], task: str) -> list[Label | None]:
        frames = images[self.camera]
        try:
            progress = self.progress(frames, task)
        except VLMError as err:
            log.warning("%s: no labels for this episode: %s", self.name, err)
            self.last_voc = None
            return [None] * (len(frames) - 1)
        return [Label(reward=float(p), success=bool(p >= self.threshold), confidence=float(p)) for p in progress[1:]]
