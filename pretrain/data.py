"""Training data: manifests (CSV/JSONL) or webdataset shards, pairing, bad-file policy.

Manifests (small sets): one row per modality file. Explicit pairs name an image per row
(``audio,image``); class-level pairs name a label per row (``audio,label``) and an image manifest
(``image,label``) supplies, at every step, an image of that label. ESC-50's ``meta/esc50.csv``
(``filename,fold,target,category,...``) is a labelled manifest as is (``root: audio/``).

Determinism by construction: the global batch of step ``s`` is a slice of a permutation that only
depends on (seed, epoch), and every random choice of a sample (augmentation, image draw, cached
view) comes from an RNG seeded by (seed, epoch, position in the epoch). So any number of processes
(each takes its contiguous slice of the global batch) and any number of loader workers build the
same global batch, and the step number alone is the exact data position for resuming.

Webdataset shards (large sets, ``write_shards``): each sample holds ``<modality>.<ext>`` bytes, a
``json`` (label, source path, image key) and for explicit pairs ``image.<ext>``. Each (process,
worker) stream reads its own shards of a per-epoch shard permutation through a seeded shuffle
buffer; its position (epoch, samples consumed) travels with every batch, is saved in checkpoints,
and on resume the stream re-reads up to it without decoding. Exact, but the global batch
composition depends on the number of processes and workers (resume with the same ones).

Bad files (missing, empty, undecodable) are reported with path and reason, appended to
``<out_dir>/bad_files.txt``, and skipped (the next item takes the slot, deterministically) or,
with ``on_bad_file: fail``, stop the run.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from encoders.config import ConfigError

log = logging.getLogger(__name__)

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
PATH_CANDIDATES = ("path", "filename", "file", "filepath")
LABEL_CANDIDATES = ("label", "category", "class", "class_name")
CAPTION_CANDIDATES = ("caption", "text")


class DataError(ValueError):
    """A data problem that stops the run (bad file under on_bad_file: fail, empty set, ...)."""


class BadFiles:
    """Report bad inputs (path + reason): log once each, append to a file, raise under 'fail'."""

    def __init__(self, policy: str = "skip", path: "Path | None" = None):
        if policy not in ("skip", "fail"):
            raise ConfigError(f"on_bad_file: {policy!r} is not one of ['skip', 'fail']")
        self.policy, self.path = policy, path
        self.entries: list[tuple[str, str]] = []
        self._seen: set[str] = set()

    def report(self, what: str, reason: Any) -> None:
        reason = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        if self.policy == "fail":
            raise DataError(f"bad input file {what}: {reason} (data.on_bad_file is 'fail'; set it to "
                            f"'skip' to leave bad files out)")
        if what in self._seen:
            return
        self._seen.add(what)
        self.entries.append((what, reason))
        log.warning("skipping bad input file %s: %s", what, reason)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:  # O_APPEND: whole short lines from any process
                f.write(f"{what}\t{reason}\n")

    def __len__(self) -> int:
        return len(self.entries)


# ------------------------------------------------------------------------------------ manifests

def read_manifest(path: "str | os.PathLike") -> tuple[list[dict], list[str]]:
    """Rows (dicts of strings) and column names of a .csv/.tsv or .jsonl manifest."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest '{path}' does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows, columns = [], []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"manifest '{path}' line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"manifest '{path}' line {n}: expected a JSON object, got {type(row).__name__}")
            rows.append({k: ("" if v is None else str(v)) for k, v in row.items()})
            columns += [k for k in row if k not in columns]
        return rows, columns
    if suffix not in (".csv", ".tsv", ".txt"):
        raise DataError(f"manifest '{path}': unknown format {suffix!r}; use .csv, .tsv or .jsonl")
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = []
        for n, row in enumerate(reader, 2):
            if None in row:
                raise DataError(f"manifest '{path}' line {n}: more fields than the {len(columns)} columns")
            rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
    if not columns:
        raise DataError(f"manifest '{path}' is empty (no header row)")
    return rows, columns


def pick_column(columns: Sequence[str], explicit: str | None, candidates: Sequence[str], what: str,
                source: Any, required: bool) -> str | None:
    if explicit is not None:
        if explicit not in columns:
            raise DataError(f"manifest '{source}' has no {what} column {explicit!r}; its columns: {list(columns)}")
        return explicit
    for c in candidates:
        if c in columns:
            return c
    if required:
        raise DataError(f"manifest '{source}' has no {what} column (looked for {list(candidates)}); "
                        f"its columns: {list(columns)}. Name it with the {what}_column option")
    return None


def resolve(value: str, root: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else root / p


@dataclass
class Row:
    """One manifest row: the modality file and what it pairs with."""

    key: str  # the path as written in the manifest (stable id)
    path: Path
    label: str | None = None
    image_key: str | None = None
    image: Path | None = None
    caption: str | None = None
    line: int = 0
    fields: dict = field(default_factory=dict)  # the raw manifest row


def load_rows(manifest: "str | os.PathLike", root: "str | os.PathLike | None", modality: str,
              path_column: str | None = None, label_column: str | None = None,
              image_column: str | None = "image", caption_column: str | None = None,
              image_root: "str | os.PathLike | None" = None, require_label: bool = False) -> list[Row]:
    """Parse a manifest into Rows (paths resolved from ``root``, default the manifest's folder)."""
    manifest = Path(manifest)
    rows, columns = read_manifest(manifest)
    root = Path(root) if root is not None else manifest.parent
    image_root = Path(image_root) if image_root is not None else root
    pcol = pick_column(columns, path_column, (modality,) + PATH_CANDIDATES, "path", manifest, True)
    lcol = pick_column(columns, label_column, LABEL_CANDIDATES, "label", manifest, require_label)
    icol = image_column if image_column in columns else None
    ccol = pick_column(columns, caption_column, CAPTION_CANDIDATES, "caption", manifest, False)
    out = []
    for n, r in enumerate(rows, 2):
        if not r.get(pcol):
            raise DataError(f"manifest '{manifest}' line {n}: empty {pcol!r}")
        label = r.get(lcol) if lcol else None
        if require_label and not label:
            raise DataError(f"manifest '{manifest}' line {n}: empty label column {lcol!r}")
        img = r.get(icol) if icol else None
        out.append(Row(r[pcol], resolve(r[pcol], root), label or None, img or None,
                       resolve(img, image_root) if img else None, r.get(ccol) if ccol else None, n, r))
    if not out:
        raise DataError(f"manifest '{manifest}' has no rows")
    return out


def check_exists(path: Path) -> str | None:
    """Why a file cannot be used (missing, empty, a folder), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "file does not exist"
    except OSError as e:
        return f"cannot stat: {e}"
    if path.is_dir():
        return "is a directory"
    if st.st_size == 0:
        return "file is empty (0 bytes)"
    return None


# --------------------------------------------------------------------------------------- images

@dataclass
class ImageRef:
    key: str
    path: Path | None = None
    data: bytes | None = None
    shard: str | None = None  # webdataset: the tar holding it
    member: str | None = None

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.shard}:{self.member}" if self.shard else f"image {self.key}"


def load_image_ref(ref: ImageRef):
    """-> RGB PIL image (alpha composited on white), raising with the reason."""
    from PIL import Image

    from encoders.preprocess import load_image

    if ref.data is not None:
        img = Image.open(io.BytesIO(ref.data))
        img.load()
        return load_image(img)
    if ref.path is not None:
        why = check_exists(ref.path)
        if why:
            raise DataError(why)
        return load_image(ref.path)
    if ref.shard is not None:
        tar = _open_tar(ref.shard)
        return load_image_ref(ImageRef(ref.key, data=tar.extractfile(ref.member).read()))
    raise DataError(f"image {ref.key} has neither a path nor data")


@functools.lru_cache(maxsize=2)
def _open_tar(path: str):
    """An open shard with its member index (images of one shard are read one after another)."""
    import tarfile

    tar = tarfile.open(path)
    tar.getmembers()
    return tar


class ImagePool:
    """Images by key, and by label for class-level pairing."""

    def __init__(self, refs: list[ImageRef], labels: list[str | None]):
        self.refs = refs
        self.by_key = {r.key: i for i, r in enumerate(refs)}
        self.by_label: dict[str, list[int]] = {}
        for i, lab in enumerate(labels):
            if lab is not None:
                self.by_label.setdefault(lab, []).append(i)


def image_manifest(cfg) -> tuple[list[ImageRef], list[str]]:
    """The ``data.images`` manifest: (refs, labels)."""
    path = cfg.path(cfg.data.images)
    root = cfg.path(cfg.data.images_root) if cfg.data.images_root else path.parent
    rows, columns = read_manifest(path)
    icol = pick_column(columns, None, ("image",) + PATH_CANDIDATES, "image", path, True)
    lcol = pick_column(columns, None, LABEL_CANDIDATES, "label", path, True)
    refs, labels = [], []
    for n, r in enumerate(rows, 2):
        if not r.get(icol) or not r.get(lcol):
            raise DataError(f"image manifest '{path}' line {n}: empty {icol!r} or {lcol!r}")
        refs.append(ImageRef(r[icol], resolve(r[icol], root)))
        labels.append(r[lcol])
    return refs, labels


# ------------------------------------------------------------------------------- modality I/O

def _decode_audio(src: "Path | bytes", sample_rate: int) -> torch.Tensor:
    """-> channel-0 waveform [T] at ``sample_rate`` (mean over channels is not used, as the reference)."""
    import soundfile as sf

    if isinstance(src, (bytes, bytearray)):
        data, sr = sf.read(io.BytesIO(src), dtype="float32", always_2d=True)
        wav = torch.from_numpy(np.ascontiguousarray(data.T))
    else:
        from encoders.audio import load_audio

        wav, sr = load_audio(src)
    if not torch.isfinite(wav).all():
        raise DataError("audio contains NaN or inf samples")
    if sr != sample_rate:
        import torchaudio

        wav = torchaudio.functional.resample(wav, orig_freq=sr, new_freq=sample_rate)
    return wav[0].contiguous()


class AudioIO:
    """Audio files -> training clips (see augment.py); the device part is ``device_transform``."""

    modality = "audio"

    def __init__(self, fb, aug):
        from .augment import AudioBatchTransform

        self.fb, self.aug = fb, aug
        self.device_transform = AudioBatchTransform(fb)

    def decode(self, src: "Path | bytes", ext: str = "") -> torch.Tensor:
        return _decode_audio(src, self.fb.sample_rate)

    def example(self, decoded: torch.Tensor, rng: np.random.Generator):
        from .augment import sample_audio_clip

        return sample_audio_clip(decoded, self.fb, self.aug, rng)

    def collate(self, examples: list) -> dict:
        from .augment import collate_clips

        return collate_clips(examples)


class TensorIO:
    """Any other modality: the student's own preprocessor, no augmentation."""

    def __init__(self, modality: str, preprocessor):
        if preprocessor is None:
            raise ConfigError(f"the {modality} student has no preprocessing in its config; add one "
                              f"(e.g. preprocess: {{kind: depth}})")
        self.modality, self.preprocessor = modality, preprocessor
        self.device_transform = None

    def decode(self, src: "Path | bytes", ext: str = "") -> torch.Tensor:
        if isinstance(src, (bytes, bytearray)):
            if ext.endswith("npy"):
                src = np.load(io.BytesIO(src), allow_pickle=False)
            else:
                from PIL import Image

                src = Image.open(io.BytesIO(src))
                src.load()
        return self.preprocessor([src])[0]

    def example(self, decoded: torch.Tensor, rng: np.random.Generator):
        return decoded

    def collate(self, examples: list) -> torch.Tensor:
        return torch.stack(examples)


# -------------------------------------------------------------------------------- teacher side

class CachedTargets:
    """Teacher embeddings from a cache: one of the image's ``views`` (random if augmenting)."""

    def __init__(self, cache, augment: bool):
        self.cache, self.index = cache, cache.index()
        self.views = cache.views if augment else 1
        self.missing = set(cache.meta.get("missing", []))

    def has(self, key: str) -> bool:
        return key in self.index and key not in self.missing

    def target(self, ref: ImageRef, rng: np.random.Generator) -> torch.Tensor:
        v = int(rng.integers(self.views)) if self.views > 1 else 0
        return torch.tensor(np.asarray(self.cache.embeddings[self.index[ref.key], v], dtype=np.float32))

    def collate(self, targets: list) -> dict:
        return {"teacher": torch.stack(targets)}


class LiveTargets:
    """Images for the teacher tower, transformed with the sample's own seed."""

    def __init__(self, teacher, augment: bool, crop_scale, flip: bool, preload: bool = False):
        self.transform = teacher.transform(train=augment, crop_scale=crop_scale, flip=flip)
        self.augment = augment
        self._images: dict[str, Any] = {}
        self.preload = preload

    def has(self, key: str) -> bool:
        return True

    def target(self, ref: ImageRef, rng: np.random.Generator) -> torch.Tensor:
        from .teacher import seeded

        img = self._images.get(ref.key) if self.preload else None
        if img is None:
            img = load_image_ref(ref)
            if self.preload:
                self._images[ref.key] = img
        if not self.augment:
            return self.transform(img)
        return seeded(self.transform, img, int(rng.integers(2 ** 31)))

    def collate(self, targets: list) -> dict:
        return {"images": torch.stack(targets)}


def stable_label_id(label: str | None) -> int:
    if label is None:
        return -1
    return int(hashlib.sha1(label.encode()).hexdigest()[:15], 16)


def _seed(*parts: int) -> np.random.Generator:
    return np.random.default_rng([int(p) & 0xFFFFFFFFFFFF for p in parts])


# ------------------------------------------------------------------------------ manifest batches

class ManifestData:
    """Items of a manifest, their pairing and per-sample example construction."""

    def __init__(self, cfg, io_: "AudioIO | TensorIO", targets: "CachedTargets | LiveTargets",
                 bad: BadFiles, progress: bool = False):
        d = cfg.data
        self.cfg, self.io, self.targets, self.bad, self.seed = cfg, io_, targets, bad, cfg.seed
        root = cfg.path(d.root) if d.root else None
        rows = load_rows(cfg.path(d.train), root, io_.modality, d.path_column, d.label_column,
                         d.image_column, image_root=cfg.path(d.images_root) if d.images_root else None)
        has_pairs = any(r.image_key for r in rows)
        pairing = d.pairing if d.pairing != "auto" else ("pairs" if has_pairs else "labels")
        self.pairing = pairing
        if pairing == "pairs" and not has_pairs:
            raise DataError(f"data.pairing is 'pairs' but manifest '{cfg.path(d.train)}' has no "
                            f"{d.image_column!r} column; name it with data.image_column, or use "
                            f"pairing: labels with an images manifest")
        if pairing == "labels":
            if d.images is None:
                raise DataError("data.pairing is 'labels' (class-level pairs): give data.images, a "
                                "manifest of image,label rows")
            if any(r.label is None for r in rows):
                raise DataError(f"data.pairing is 'labels' but manifest '{cfg.path(d.train)}' rows need "
                                f"a label (column label/category or data.label_column)")
            refs, labels = image_manifest(cfg)
        else:
            refs, seen = [], set()
            for r in rows:
                if r.image_key and r.image_key not in seen:
                    seen.add(r.image_key)
                    refs.append(ImageRef(r.image_key, r.image))
            labels = [None] * len(refs)
        if cfg.loss.positives == "labels" and any(r.label is None for r in rows):
            raise DataError("loss.positives is 'labels' but some manifest rows have no label")
        # drop unusable images, then rows that lost their image(s)
        good_refs, good_labels = [], []
        for ref, lab in zip(refs, labels):
            why = check_exists(ref.path) if ref.path is not None else None
            if why is None and not targets.has(ref.key):
                why = "not in the teacher cache (unreadable when it was written, or added later)"
            if why:
                bad.report(ref.describe(), why)
                continue
            good_refs.append(ref)
            good_labels.append(lab)
        self.pool = ImagePool(good_refs, good_labels)
        self.classes = sorted({r.label for r in rows if r.label is not None})
        class_id = {c: i for i, c in enumerate(self.classes)}
        items = []
        for r in rows:
            why = check_exists(r.path)
            if why is None and pairing == "pairs" and r.image_key not in self.pool.by_key:
                why = f"its image {r.image_key} is unusable"
            if why is None and pairing == "labels" and r.label not in self.pool.by_label:
                why = f"no image of label {r.label!r} in the images manifest"
            if why:
                bad.report(str(r.path), why)
                continue
            items.append(r)
        self.items = items
        self.label_ids = [class_id[r.label] if r.label is not None else -1 for r in items]
        self.decoded: list | None = None
        if d.preload:
            self._preload(progress)
        if not self.items:
            raise DataError(f"no usable rows in '{cfg.path(d.train)}' ({len(bad)} bad files, see above)")

    def _preload(self, progress: bool) -> None:
        it = range(len(self.items))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="preload", unit="file")
        keep, decoded = [], []
        for i in it:
            try:
                decoded.append(self.io.decode(self.items[i].path))
                keep.append(i)
            except Exception as e:
                self.bad.report(str(self.items[i].path), e)
        self.items = [self.items[i] for i in keep]
        self.label_ids = [self.label_ids[i] for i in keep]
        self.decoded = decoded
        if isinstance(self.targets, LiveTargets):
            self.targets.preload = True

    def __len__(self) -> int:
        return len(self.items)

    def example(self, index: int, epoch: int, position: int):
        """Sample ``index`` as the ``position``-th sample of ``epoch`` (bad ones pass the slot on)."""
        n = len(self.items)
        for attempt in range(n):
            i = (index + attempt) % n
            rng = _seed(self.seed, epoch, position, attempt, 3)
            item = self.items[i]
            try:
                decoded = self.decoded[i] if self.decoded is not None else self.io.decode(item.path)
                x = self.io.example(decoded, rng)
            except DataError:
                raise
            except Exception as e:
                self.bad.report(str(item.path), e)
                continue
            if self.pairing == "pairs":
                ref = self.pool.refs[self.pool.by_key[item.image_key]]
            else:
                choices = self.pool.by_label[item.label]
                ref = self.pool.refs[choices[int(rng.integers(len(choices)))]]
            try:
                t = self.targets.target(ref, rng)
            except Exception as e:
                self.bad.report(ref.describe(), e)
                continue
            return x, t, self.label_ids[i]
        raise DataError("every item of the training set failed to load")

    def collate(self, examples: list) -> dict:
        xs, ts, labels = zip(*examples)
        return {"x": self.io.collate(list(xs)), **self.targets.collate(list(ts)),
                "labels": torch.tensor(labels, dtype=torch.long)}


class StepBatches(Dataset):
    """Item ``i`` = this process's share of the global batch of step ``start_step + i``."""

    def __init__(self, data: ManifestData, batch_size: int, start_step: int, total_steps: int,
                 rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ConfigError(f"train.batch_size {batch_size} is not divisible by the {world} processes")
        if len(data) < batch_size:
            raise ConfigError(f"train.batch_size {batch_size} is larger than the {len(data)} usable "
                              f"training samples; lower it")
        self.data, self.batch, self.local = data, batch_size, batch_size // world
        self.start, self.total, self.rank = start_step, total_steps, rank
        self.steps_per_epoch = len(data) // batch_size
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return max(self.total - self.start, 0)

    def order(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(int(_seed(self.data.seed, epoch, 5).integers(2 ** 62)))
            self._perm = (epoch, torch.randperm(len(self.data), generator=g))
        return self._perm[1]

    def __getitem__(self, i: int) -> dict:
        step = self.start + i
        epoch, k = divmod(step, self.steps_per_epoch)
        lo = k * self.batch + self.rank * self.local
        idx = self.order(epoch)[lo: lo + self.local].tolist()
        batch = self.data.collate([self.data.example(j, epoch, lo + n) for n, j in enumerate(idx)])
        batch["step"] = step
        return batch


# --------------------------------------------------------------------------------- webdataset

def expand_shards(spec: str, base_dir: str | None = None) -> list[str]:
    """A brace pattern, a .tar, a folder of .tar files or a list file (.txt) -> shard paths."""
    import braceexpand

    p = Path(os.path.expanduser(spec))
    if not p.is_absolute() and base_dir and not spec.startswith(("pipe:", "http")):
        p = Path(base_dir) / p
    if p.is_dir():
        urls = sorted(str(x) for x in p.glob("*.tar"))
    elif p.suffix == ".txt" and p.exists():
        urls = [str(resolve(line.strip(), p.parent)) for line in p.read_text().splitlines() if line.strip()]
    else:
        urls = list(braceexpand.braceexpand(str(p)))
    missing = [u for u in urls if not u.startswith(("pipe:", "http")) and not Path(u).exists()]
    if not urls or missing:
        raise DataError(f"webdataset shards '{spec}': {len(missing)} of {len(urls)} shard(s) missing "
                        f"(first: {missing[:3]})" if urls else f"webdataset shards '{spec}': nothing matches")
    return urls


def shards_index(urls: list[str]) -> dict:
    """``shards.json`` written by ``write_shards`` next to the shards, if present."""
    folder = Path(urls[0]).parent
    path = folder / "shards.json"
    return json.loads(path.read_text()) if path.exists() else {}


def is_webdataset(cfg) -> bool:
    d = cfg.data
    if d.format != "auto":
        return d.format == "webdataset"
    spec = d.train
    p = cfg.path(spec)
    return spec.endswith(".tar") or "{" in spec or (p is not None and p.is_dir())


def _split_fields(sample: dict, modality: str) -> tuple[str, bytes, str | None, bytes | None, dict]:
    mod = [k for k in sample if k.startswith(modality + ".") or k == modality]
    if not mod:
        raise DataError(f"sample has no '{modality}.*' file (fields: {sorted(k for k in sample if not k.startswith('__'))})")
    img = [k for k in sample if k.startswith("image.")]
    meta = json.loads(sample["json"]) if "json" in sample else {}
    return mod[0], sample[mod[0]], (img[0] if img else None), (sample[img[0]] if img else None), meta


class ShardBatches(IterableDataset):
    """Local batches from webdataset shards; one infinite stream per (process, loader worker)."""

    def __init__(self, cfg, urls: list[str], io_, targets, bad: BadFiles, pool: ImagePool | None,
                 local_batch: int, start_step: int, positions: dict | None, rank: int, world: int,
                 num_workers: int):
        self.cfg, self.urls, self.io, self.targets, self.bad, self.pool = cfg, urls, io_, targets, bad, pool
        self.local, self.start, self.rank, self.world = local_batch, start_step, rank, world
        self.streams = max(num_workers, 1)
        self.positions = positions or {}
        if len(urls) < world * self.streams:
            raise ConfigError(f"{len(urls)} webdataset shard(s) cannot feed {world} process(es) x "
                              f"{self.streams} loader worker(s); write more, smaller shards "
                              f"(write-shards --maxcount) or lower data.num_workers")
        self.seed = cfg.seed
        self.buffer = cfg.data.shuffle_buffer
        self.classes = shards_index(urls).get("classes")

    def _stream_shards(self, epoch: int, stream: int) -> list[str]:
        perm = _seed(self.seed, epoch, 13).permutation(len(self.urls))
        return [self.urls[i] for i in perm[self.rank * self.streams + stream:: self.world * self.streams]]

    def _raw(self, shards: list[str]) -> Iterator[dict]:
        import webdataset as wds

        def handler(exn):
            self.bad.report("webdataset shard", exn)
            return True

        ds = wds.WebDataset(shards, shardshuffle=False, nodesplitter=None, workersplitter=None,
                            empty_check=False, handler=handler)
        yield from ds

    def _shuffled(self, it: Iterator, rng: np.random.Generator) -> Iterator:
        buf: list = []
        for x in it:
            if len(buf) < self.buffer:
                buf.append(x)
                continue
            j = int(rng.integers(self.buffer))
            yield buf[j]
            buf[j] = x
        for j in rng.permutation(len(buf)):
            yield buf[j]

    def _label_id(self, label: str | None) -> int:
        if label is None:
            return -1
        if self.classes and label in self.classes:
            return self.classes.index(label)
        return stable_label_id(label)

    def _example(self, raw: dict, rng: np.random.Generator):
        name, data, img_name, img_data, meta = _split_fields(raw, self.io.modality)
        what = f"{raw.get('__url__', '?')}:{raw.get('__key__', '?')}.{name}"
        try:
            x = self.io.example(self.io.decode(data, name), rng)
        except Exception as e:
            self.bad.report(what, e)
            return None
        label = meta.get("label")
        if img_data is not None:
            ref = ImageRef(raw["__key__"], data=img_data)
        else:
            choices = self.pool.by_label.get(label) if self.pool is not None else None
            if not choices:
                self.bad.report(what, f"no image for label {label!r} (give data.images for class-level pairs)")
                return None
            ref = self.pool.refs[choices[int(rng.integers(len(choices)))]]
        if not self.targets.has(ref.key):
            self.bad.report(what, "image not in the teacher cache")
            return None
        try:
            t = self.targets.target(ref, rng)
        except Exception as e:
            self.bad.report(ref.describe() if img_data is None else what + ":image", e)
            return None
        return x, t, self._label_id(label)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        stream = (worker + self.start) % self.streams  # keeps the round-robin order across resumes
        epoch, consumed = self.positions.get(stream, (0, 0))
        batch: list = []
        while True:
            rng = _seed(self.seed, epoch, self.rank, stream, 17)
            n = 0
            for raw in self._shuffled(self._raw(self._stream_shards(epoch, stream)), rng):
                n += 1
                if n <= consumed:
                    continue  # replay to the saved position without decoding
                ex = self._example(raw, _seed(self.seed, epoch, self.rank, stream, n, 19))
                if ex is None:
                    continue
                batch.append(ex)
                if len(batch) == self.local:
                    xs, ts, labels = zip(*batch)
                    out = {"x": self.io.collate(list(xs)), **self.targets.collate(list(ts)),
                           "labels": torch.tensor(labels, dtype=torch.long),
                           "position": torch.tensor([stream, epoch, n])}
                    batch = []
                    yield out
            if n == 0:
                raise DataError(f"webdataset stream {stream} of process {self.rank} read no samples "
                                f"from {self._stream_shards(epoch, stream)}")
            epoch, consumed = epoch + 1, 0


# --------------------------------------------------------------------------------- shard writer

def write_shards(manifest: "str | os.PathLike", out: "str | os.PathLike", modality: str = "audio",
                 root: "str | os.PathLike | None" = None, path_column: str | None = None,
                 label_column: str | None = None, image_column: str = "image",
                 maxcount: int = 1000, prefix: str = "train", on_bad_file: str = "skip",
                 progress: bool = True) -> list[Path]:
    """Manifest -> webdataset tar shards ``<out>/<prefix>-000000.tar ...`` + ``shards.json``.

    Each sample: ``<key>.<modality>.<ext>`` (the file's bytes), ``<key>.json`` (label, source
    path, image key) and, for explicit pairs, ``<key>.image.<ext>``. Files are checked (decoded)
    before they are written; bad ones are reported and skipped, or fail.
    """
    import webdataset as wds

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bad = BadFiles(on_bad_file, out / "bad_files.txt")
    rows = load_rows(manifest, root, modality, path_column, label_column, image_column)
    it = rows
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(rows, desc="write shards", unit="file")
    counts: list[int] = []
    written: list[str] = []

    def post(name):
        written.append(name)

    pattern = str(out / f"{prefix}-%06d.tar")
    n_ok = 0
    with wds.ShardWriter(pattern, maxcount=maxcount, verbose=0, post=post) as sink:
        for i, r in enumerate(it):
            try:
                data = _checked_bytes(r.path, modality)
                img = _checked_bytes(r.image, "image") if r.image is not None else None
            except Exception as e:
                bad.report(str(r.path if not isinstance(e, _ImageProblem) else r.image), e)
                continue
            sample = {"__key__": f"{i:09d}", f"{modality}{r.path.suffix.lower()}": data,
                      "json": json.dumps({"label": r.label, "source": r.key, "image": r.image_key}).encode()}
            if img is not None:
                sample[f"image{r.image.suffix.lower()}"] = img
            sink.write(sample)
            n_ok += 1
    names = sorted(Path(w).name for w in set(written) | {str(p) for p in out.glob(f"{prefix}-*.tar")})
    for name in names:
        with __import__("tarfile").open(out / name) as tar:
            counts.append(len({m.name.split(".", 1)[0] for m in tar.getmembers()}))
    index = {"modality": modality, "shards": names, "counts": counts, "total": sum(counts),
             "classes": sorted({r.label for r in rows if r.label is not None}) or None,
             "pairing": "pairs" if any(r.image for r in rows) else "labels",
             "source": str(manifest), "bad_files": len(bad)}
    from .checkpoint import atomic_write_text

    atomic_write_text(out / "shards.json", json.dumps(index, indent=1))
    log.info("wrote %d samples in %d shard(s) to %s (%d bad files skipped)", n_ok, len(names), out, len(bad))
    return [out / n for n in names]


class _ImageProblem(DataError):
    pass


def _checked_bytes(path: Path, kind: str) -> bytes:
    why = check_exists(path)
    if why:
        raise (_ImageProblem if kind == "image" else DataError)(why)
    data = path.read_bytes()
    try:
        if kind == "image":
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                im.load()
        elif kind == "audio":
            import soundfile as sf

            sf.info(io.BytesIO(data))
            sf.read(io.BytesIO(data), frames=1024)
        elif path.suffix.lower() == ".npy":
            np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise (_ImageProblem if kind == "image" else DataError)(f"cannot decode: {e}") from None
    return data


# ------------------------------------------------------------------------- images for the cache

def collect_images(cfg, bad: BadFiles) -> list[ImageRef]:
    """Every image a run can pair with (sorted by key): what ``cache-teacher`` embeds."""
    d = cfg.data
    if d.images is not None:
        refs, _ = image_manifest(cfg)
    elif is_webdataset(cfg):
        import tarfile

        refs = []
        for url in expand_shards(d.train, cfg.base_dir):
            with tarfile.open(url) as tar:
                for m in tar.getmembers():
                    key, _, field_ = m.name.partition(".")
                    if field_.startswith("image."):
                        refs.append(ImageRef(key, shard=url, member=m.name))
    else:
        root = cfg.path(d.root) if d.root else None
        rows = load_rows(cfg.path(d.train), root, cfg.student.modality, d.path_column, d.label_column,
                         d.image_column, image_root=cfg.path(d.images_root) if d.images_root else None)
        refs = [ImageRef(r.image_key, r.image) for r in rows if r.image_key]
        if not refs:
            raise DataError(f"manifest '{cfg.path(d.train)}' names no images (column {d.image_column!r}) "
                            f"and data.images is not set: nothing to cache")
    unique: dict[str, ImageRef] = {}
    for r in refs:
        unique.setdefault(r.key, r)
    return [unique[k] for k in sorted(unique)]
