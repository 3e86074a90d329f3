"""The unlabelled sound pool: the other sounds in the pocket sources, for self-supervised pretraining.

The Debian games ship thousands of sounds that no category names (engines, spells, UI clicks,
voices, machines). Pretraining the audio ConvNet on them WITHOUT labels or pictures (two augmented
views of one clip must agree, `audio_ssl.py`) gives the emergent stage a far better start than
random weights. The pool never holds a labelled clip: a file any category pattern matches (train,
held-out or a dropped duplicate of either) is left out, and so is any file whose name stem or PCM
equals a held-out clip's.

Writes ``audio_unlabelled/<source>/<id>.wav`` (16 kHz mono, trimmed, at most 6 s) and
``manifests/audio_unlabelled.csv``; ATTRIBUTION.md gets a section listing every file and licence.
"""

from __future__ import annotations

import hashlib
import random
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from . import audio as A
from .categories import CATEGORIES, Category
from .collect import _candidates
from .manifests import AUDIO_COLUMNS, read_manifest, write_manifest
from .sources import FetchedSource, write_text_atomic

POOL_COLUMNS = ("path", "source", "license", "duration")
POOL_MANIFEST = "manifests/audio_unlabelled.csv"
MAX_SECONDS = 6.0
MIN_SECONDS = 0.3
PER_SOURCE = 2500  # no single game dominates (0 A.D. and MegaGlest ship over a thousand each)
_SECTION = "## Unlabelled audio files"


class PoolError(ValueError):
    pass


def _stem_name(path: str) -> str:
    return A.name_stem(path.split("!")[-1]).rsplit("/", 1)[-1]


def heldout_keys(data: Path) -> tuple[set[str], set[str]]:
    """(name stems, PCM hashes) of the val and test clips: what the pool must not contain."""
    import soundfile as sf  # noqa: PLC0415
    stems, hashes = set(), set()
    for split in ("val", "test"):
        for row in read_manifest(data / "manifests" / f"audio_{split}.csv", AUDIO_COLUMNS):
            stems.add(_stem_name(row["source"].split(":", 1)[-1]))
            # the file holds pcm16(wave): hash its int16 samples as pcm_hash would the wave
            hashes.add(hashlib.sha1(sf.read(data / row["path"], dtype="int16")[0].tobytes()).hexdigest())
    return stems, hashes


def build_pool(data: Path, fetched: dict[str, FetchedSource], categories: tuple[Category, ...] = CATEGORIES,
               per_source: int = PER_SOURCE, seed: int = 0, log: list[str] | None = None,
               progress: bool = True) -> list[dict]:
    """Write the pool into the data directory ``data`` (its audio manifests must exist)."""
    from .data import _clip_id, _tqdm, _write_wav  # noqa: PLC0415

    data = Path(data)
    if not (data / "manifests" / "audio_test.csv").is_file():
        raise PoolError(f"{data}: no manifests/audio_test.csv; the pool is built after the labelled clips "
                        f"(python -m pretrain.pocket data --out {data})")
    log = log if log is not None else []
    stems, hashes = heldout_keys(data)
    rows: list[dict] = []
    for key in _tqdm(sorted(fetched), desc="unlabelled pool", unit="source", disable=not progress):
        patterns = [p for c in categories for p in c.sounds.get(key, ())]
        candidates = [(path, lic, load) for path, lic, _, load in _candidates(fetched[key])
                      if not any(fnmatchcase(path, p) for p in patterns)]
        random.Random(f"{seed}/{key}").shuffle(candidates)
        kept = skipped = 0
        for path, lic, load in candidates:
            if kept >= per_source:
                break
            if _stem_name(path) in stems:
                skipped += 1
                continue
            try:
                wave = A.trim_silence(A.decode(load(), f"{key}:{path}"))
            except A.AudioError as err:
                log.append(f"pool: skipped {err}")
                continue
            if A.is_silent(wave) or len(wave) < MIN_SECONDS * A.SAMPLE_RATE:
                continue
            wave = wave[: int(MAX_SECONDS * A.SAMPLE_RATE)]
            digest = A.pcm_hash(wave)
            if digest in hashes:
                skipped += 1
                continue
            rel = f"audio_unlabelled/{key}/{_clip_id(key, path, digest)}.wav"
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            _write_wav(data / rel, wave)
            rows.append({"path": rel, "source": f"{key}:{path}", "license": lic,
                         "duration": f"{len(wave) / A.SAMPLE_RATE:.3f}"})
            kept += 1
        log.append(f"pool: {key}: {len(candidates)} files no category names, {kept} kept, "
                   f"{skipped} left out as held-out names or copies")
    rows.sort(key=lambda r: r["path"])
    write_manifest(data / POOL_MANIFEST, rows, POOL_COLUMNS)
    write_pool_attribution(data, rows)
    return rows


def write_pool_attribution(data: Path, rows: list[dict]) -> None:
    """Replace (or add) ATTRIBUTION.md's section listing the pool's files."""
    path = Path(data) / "ATTRIBUTION.md"
    text = path.read_text() if path.is_file() else "# Attribution\n"
    text = text.split(f"\n{_SECTION}\n")[0].rstrip("\n") + "\n"
    lines = ["", _SECTION, "",
             "Sounds no category names, used only for self-supervised pretraining (no labels, no "
             "pictures); converted to 16 kHz mono, trimmed, cut at 6 s.", "",
             "| file | source path | licence |", "|---|---|---|"]
    lines += [f"| {r['path']} | {r['source']} | {r['license']} |" for r in rows]
    write_text_atomic(path, text + "\n".join(lines) + "\n")


def load_pool(data: Path) -> list[np.ndarray]:
    """The pool's waves (float32, 16 kHz); a clear error when the data directory has none."""
    import soundfile as sf  # noqa: PLC0415
    manifest = Path(data) / POOL_MANIFEST
    if not manifest.is_file():
        raise PoolError(f"{manifest} is missing: self-supervised pretraining (recipe ssl_steps > 0) needs "
                        f"the unlabelled pool; add it with 'python -m pretrain.pocket pool --data {data}' "
                        "or set ssl_steps to 0")
    rows = read_manifest(manifest, POOL_COLUMNS)
    if not rows:
        raise PoolError(f"{manifest} lists no clips; rebuild it with 'python -m pretrain.pocket pool --data {data}'")
    return [sf.read(Path(data) / r["path"], dtype="float32")[0] for r in rows]
