"""A real OpenAI-compatible HTTP server on loopback, for testing the HTTP VLM backend end to end.

Its "model" judges images by how red they are (mean of R - (G + B) / 2, in [0, 1] for the test
images), so answers have meaning the tests can check: "Yes" to the success question when redness
>= 0.5, "1" to the preference question when the first image is redder, "Image k: X%" with X the
redness for progress. Each request is logged (`requests`) so tests can see what was sent.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


def redness(image: np.ndarray) -> float:
    image = image.astype(np.float64) / 255.0
    return float(np.clip(np.mean(image[..., 0] - (image[..., 1] + image[..., 2]) / 2), 0.0, 1.0))


def _decode(url: str) -> np.ndarray:
    raw = base64.b64decode(url.split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class JudgeServer:
    def __init__(self, logprobs: bool = True, answer: str | None = None, model: str = "judge"):
        self.logprobs, self.answer, self.model = logprobs, answer, model
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._send(200, {"data": [{"id": server.model}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": "not found"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if body.get("model") != server.model:
                    return self._send(404, {"error": f"model {body.get('model')} not served"})
                content = body["messages"][0]["content"]
                text = " ".join(c["text"] for c in content if c["type"] == "text")
                images = [_decode(c["image_url"]["url"]) for c in content if c["type"] == "image_url"]
                self._send(200, server.respond(text, images, body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, text: str, images: list[np.ndarray], body: dict) -> dict:
        logprobs = None
        if self.answer is not None:
            answer = self.answer
        elif "Answer Yes or No" in text:
            p = min(max(0.5 + 2 * (redness(images[0]) - 0.5), 0.02), 0.98)
            answer = "Yes" if p >= 0.5 else "No"
            logprobs = [("Yes", p), ("No", 1 - p)]
        elif "Answer 1 or 2" in text:
            a, b = redness(images[0]), redness(images[1])
            p = 1 / (1 + math.exp(-20 * (a - b)))
            answer = "1" if p >= 0.5 else "2"
            logprobs = [("1", p), ("2", 1 - p)]
        else:
            n = int(re.search(r"The next (\d+) images", text).group(1))
            answer = "\n".join(f"Image {k}: {round(100 * redness(images[k]))}%" for k in range(1, n + 1))
        choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        if body.get("logprobs") and self.logprobs and logprobs is not None:
            top = [{"token": token, "logprob": math.log(max(p, 1e-9))} for token, p in logprobs]
            choice["logprobs"] = {"content": [{"token": answer, "logprob": 0.0, "top_logprobs": top}]}
        return {"id": "x", "object": "chat.completion", "model": self.model, "choices": [choice]}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def red_frames(levels, size: int = 24) -> np.ndarray:
    """Uniform images whose redness is each level in [0, 1] (plus a little texture)."""
    rng = np.random.default_rng(0)
    frames = []
    for level in levels:
        image = np.empty((size, size, 3))
        image[..., 0] = 0.5 + level / 2
        image[..., 1:] = 0.5 - level / 2
        image += rng.normal(0, 0.01, image.shape)
        frames.append(np.clip(image * 255, 0, 255).astype(np.uint8))
    return np.stack(frames)
