"""The actor's spool: every transition batch is kept until the learner has committed it.

`DiskSpool` writes one .npz per batch (atomically, no pickle) so batches survive a learner outage and
an actor crash; `MemorySpool` keeps them in RAM (benchmarks, tests, or a robot that can afford to
lose the un-acknowledged tail on a crash). Both also remember the next sequence number, so a
restarted actor never reuses one the learner has already seen (it would be dropped as a duplicate).
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.files import atomic_write

log = logging.getLogger(__name__)

Batch = tuple[dict[str, Any], dict[str, np.ndarray]]  # (header, arrays)
STATE_FILE = "state.json"
_BATCH_FILE = re.compile(r"^(\d{12})\.npz$")


class SpoolError(RuntimeError):
    """The spool directory cannot be used or written."""


class MissingBatch(KeyError):
    """A batch that should be in the spool is not (deleted by hand, or its file is corrupt)."""


class MemorySpool:
    """Un-committed batches in RAM: fast, but lost if the actor process dies."""

    def __init__(self) -> None:
        self._batches: dict[int, Batch] = {}
        self.next_seq = 1

    def seqs(self) -> list[int]:
        return sorted(self._batches)

    def put(self, seq: int, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._batches[seq] = (header, arrays)
        self.next_seq = max(self.next_seq, seq + 1)

    def get(self, seq: int) -> Batch:
        try:
            return self._batches[seq]
        except KeyError:
            raise MissingBatch(seq) from None

    def drop_through(self, seq: int) -> None:
        for s in [s for s in self._batches if s <= seq]:
            del self._batches[s]

    def set_next_seq(self, next_seq: int) -> None:
        self.next_seq = max(self.next_seq, next_seq)

    def close(self) -> None:
        self._batches.clear()


class DiskSpool:
    """One `NNNNNNNNNNNN.npz` per batch in `directory` plus `state.json` ({"actor_id", "next_seq"}).

    A batch file holds arr_0 = the JSON {"seq", "header", "names"} as uint8, then arr_1.. = the arrays
    in `names` order (positional, so no array name can clash with np.savez's own arguments). The
    last `cache_batches` batches are also kept in RAM so the usual send needs no read back."""

    def __init__(self, directory: str | Path, actor_id: str, cache_batches: int = 16) -> None:
        self.directory = Path(directory)
        self.actor_id = actor_id
        self._cache: dict[int, Batch] = {}
        self._cache_batches = cache_batches
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SpoolError(f"cannot create spool_dir {self.directory}: {e}") from None
        for tmp in self.directory.glob("*.tmp"):  # a crash inside atomic_write leaves these
            tmp.unlink(missing_ok=True)
        self.next_seq = 1
        state_path = self.directory / STATE_FILE
        if state_path.exists():
            try:
                state = json.loads(state_path.read_text())
                owner, next_seq = state["actor_id"], int(state["next_seq"])
            except (ValueError, KeyError, TypeError) as e:
                raise SpoolError(f"{state_path} is unreadable ({e}): restore it, or move the whole "
                                 "spool_dir away to start this actor afresh") from None
            if owner != actor_id:
                raise SpoolError(f"spool_dir {self.directory} belongs to actor {owner!r}, not "
                                 f"{actor_id!r}: give each actor its own spool_dir")
            self.next_seq = next_seq
        self._seqs = sorted(int(m.group(1)) for p in self.directory.iterdir()
                            if (m := _BATCH_FILE.match(p.name)))
        if self._seqs:
            self.next_seq = max(self.next_seq, self._seqs[-1] + 1)
        self._save_state()

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.npz"

    def _save_state(self) -> None:
        text = json.dumps({"actor_id": self.actor_id, "next_seq": self.next_seq}).encode()
        atomic_write(self.directory / STATE_FILE, lambda f: f.write(text))

    def seqs(self) -> list[int]:
        return list(self._seqs)

    def put(self, seq: int, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        meta = json.dumps({"seq": seq, "header": header, "names": list(arrays)}).encode()
        try:
            atomic_write(self._path(seq),
                         lambda f: np.savez(f, np.frombuffer(meta, np.uint8), *arrays.values()))
        except OSError as e:
            raise SpoolError(f"cannot spool batch seq {seq} to {self.directory}: {e}: free disk space "
                             "or point spool_dir at a writable disk") from None
        self._seqs.append(seq)
        self.next_seq = max(self.next_seq, seq + 1)
        if len(self._cache) < self._cache_batches:
            self._cache[seq] = (header, arrays)

    def get(self, seq: int) -> Batch:
        cached = self._cache.get(seq)
        if cached is not None:
            return cached
        path = self._path(seq)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["arr_0"].tobytes())
                arrays = {name: z[f"arr_{i + 1}"] for i, name in enumerate(meta["names"])}
            if meta["seq"] != seq:
                raise ValueError(f"file holds seq {meta['seq']}")
            return meta["header"], arrays
        except FileNotFoundError:
            raise MissingBatch(seq) from None
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:  # corrupt: keep it for a human
            bad = path.with_suffix(".corrupt")
            path.replace(bad)
            log.error("spooled batch %s is unreadable (%s): moved to %s, the batch is lost", path, e, bad)
            raise MissingBatch(seq) from None

    def drop_through(self, seq: int) -> None:
        """Delete batches <= seq (the learner has committed them). state.json is saved first when the
        newest batch goes, so next_seq survives an empty spool."""
        if not self._seqs or self._seqs[0] > seq:
            return
        if self._seqs[-1] <= seq:
            self._save_state()
        keep = [s for s in self._seqs if s > seq]
        for s in self._seqs[:len(self._seqs) - len(keep)]:
            self._path(s).unlink(missing_ok=True)
            self._cache.pop(s, None)
        self._seqs = keep

    def set_next_seq(self, next_seq: int) -> None:
        if next_seq > self.next_seq:
            self.next_seq = next_seq
            self._save_state()

    def close(self) -> None:
        self._cache.clear()
