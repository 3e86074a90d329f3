"""Group-aware splits and CSV manifests (written atomically)."""

from __future__ import annotations

import csv
import io
import random
import zlib
from pathlib import Path

from .sources import write_text_atomic

SPLITS = ("train", "val", "test")
AUDIO_COLUMNS = ("path", "label", "recording", "source", "license", "duration")
IMAGE_COLUMNS = ("path", "label", "style", "source", "license")


def split_counts(n: int) -> tuple[int, int, int]:
    """(train, val, test) numbers of GROUPS: test gets one as soon as there are 3, val from 4."""
    if n < 3:
        return n, 0, 0
    test = max(1, round(0.2 * n))
    val = 0 if n < 4 else max(1, round(0.15 * n))
    return n - val - test, val, test


def assign_splits(groups: list[str], label: str, seed: int) -> dict[str, str]:
    """Deterministic group -> split for the groups of one label (seeded per label)."""
    ordered = sorted(set(groups))
    rng = random.Random(seed * 1_000_003 + zlib.crc32(label.encode()))
    rng.shuffle(ordered)
    n_train, n_val, _ = split_counts(len(ordered))
    return {g: ("train" if k < n_train else "val" if k < n_train + n_val else "test")
            for k, g in enumerate(ordered)}


def write_manifest(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row[c] for c in columns})
    write_text_atomic(path, buf.getvalue())


def read_manifest(path: Path, columns: tuple[str, ...] | None = None) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if columns is not None and tuple(reader.fieldnames or ()) != columns:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(columns)}; "
                             "rebuild it with `python -m pretrain.pocket data`")
        return list(reader)
