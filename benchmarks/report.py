"""Shared by the benchmark scripts: print the figures and write them as JSON."""

from __future__ import annotations

import json


def report(results: dict, out: str | None) -> None:
    width = max(len(k) for k in results) + 2
    for key, value in results.items():
        print(f"{key:{width}s} {value:.3f}" if isinstance(value, float) else f"{key:{width}s} {value}")
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=2)
