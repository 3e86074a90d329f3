"""Shared bits of the demos tests: free ports, an in-process app server, sound files with faults."""
from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_files import synth


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app, **launch_kwargs):
    """Launch ``app`` on a free loopback port in this process; yield its URL; close it afterwards."""
    from demos.app import launch

    port = free_port()
    _, url, _ = launch(app, host="127.0.0.1", port=port, block=False, quiet=True, **launch_kwargs)
    try:
        yield url
    finally:
        app.close()


def write_tone(path: Path, seconds: float = 1.5, rate: int = 16000, seed: int = 0) -> Path:
    sf.write(path, synth(seconds, rate, seed=seed)[:, 0], rate)
    return path


def write_silence(path: Path, seconds: float = 1.5, rate: int = 16000, dc: float = 0.0) -> Path:
    sf.write(path, np.full(int(seconds * rate), dc, dtype=np.float32), rate, subtype="FLOAT")
    return path


def write_garbage(path: Path, size: int = 4000) -> Path:
    """A file with an audio name and random bytes inside (what a broken upload looks like)."""
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path
