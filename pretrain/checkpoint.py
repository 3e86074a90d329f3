"""Atomic, exactly-resumable training checkpoints.

A checkpoint holds everything the next step depends on: student weights and buffers, optimizer,
LR scheduler and grad scaler state, the RNG state of every process, and the data position (the
global step; the data order is a pure function of seed, epoch and position, so the step is enough).

Writes are atomic: the file is written to a temporary name in the same folder, flushed and
fsync'ed, renamed over the old one, and the folder is fsync'ed -- a crash (even SIGKILL) leaves
either the old or the new checkpoint, never a torn one. Everything is plain tensors and numbers,
so loading uses ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT = "last.pt"


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


class LiveCSV:
    """A training curve written row by row while a run goes, to ``<path>.partial`` (follow it with
    ``tail -f``); ``finish()`` moves it onto ``path``. A run that stops before ``finish()`` leaves
    whatever ``path`` held untouched (e.g. the curve of the model a retrain would replace)."""

    def __init__(self, path: Path, fieldnames=None, extrasaction: str = "raise"):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._extrasaction = extrasaction
        self._file = open(self.partial, "w", newline="")
        self._writer = None
        if fieldnames is not None:
            self._start(fieldnames)

    def _start(self, fieldnames) -> None:
        self._writer = csv.DictWriter(self._file, fieldnames=list(fieldnames), extrasaction=self._extrasaction)
        self._writer.writeheader()

    def write(self, row: dict, flush: bool = True) -> None:
        if self._writer is None:  # columns from the first row
            self._start(row)
        self._writer.writerow(row)
        if flush:
            self._file.flush()

    def close(self) -> None:
        """Close without publishing (the .partial file stays for inspection)."""
        if not self._file.closed:
            self._file.close()

    def finish(self) -> Path:
        self.close()
        os.replace(self.partial, self.path)
        return self.path


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    atomic_write_bytes(Path(path), lambda f: torch.save(state, f))
    return Path(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at '{path}'")
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------- RNG state

def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors/lists (torch CPU + CUDA, numpy, python)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def write_marker(folder: Path, info: dict) -> None:
    """A small JSON next to the checkpoint (step, time) that tools and tests can poll cheaply."""
    atomic_write_text(Path(folder) / "last.json", json.dumps(info))
