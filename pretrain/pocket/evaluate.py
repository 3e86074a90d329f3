"""Held-out figures of the pocket modality encoders, and embeddings later pocket models can use.

    from pretrain.pocket.evaluate import heldout_sounds, class_sound_embeddings
    sounds = heldout_sounds("/work/data/pocket", "test")        # SoundSet: embeddings [N, 256], labels, paths
    per_class = class_sound_embeddings("/work/data/pocket")     # {"dog": [256] unit, ...} (test clips)
    zs = audio_zero_shot(sounds)                                # top-1/top-5 through the pocket text tower

Everything goes through the public path (``encoders.embed_audio`` / ``embed_depth`` /
``embed_image`` with ``model="pocket"`` unless another encoder is given), so the figures are what
users get from the shipped files. ``data`` is a built pocket data directory (``python -m
pretrain.pocket data``) or a folder of examples named ``<category>__*.wav`` (``.npy`` disparity,
``.png`` renders), such as ``tests/data/pocket``.

Held-out clips come from held-out RECORDINGS (the data build splits by recording), never from the
train split. Zero-shot candidates are all of ``prompts.CLASS_NAMES`` (chance 1/40) unless given.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class SoundSet:
    embeddings: torch.Tensor  # [N, D] unit
    labels: list[str]
    paths: list[str]


@dataclass
class DepthSet:
    embeddings: torch.Tensor  # [N, D] unit
    labels: list[str]
    keys: list[str]  # "<scene image>#<object instance>"


EXAMPLE_SUFFIXES = {"audio": (".wav", ".ogg", ".flac"), "depth": (".npy",), "images": (".png",)}


def _rows(data: Path, split: str, modality: str = "audio") -> list[dict]:
    """``path,label`` rows of a pocket data directory's ``manifests/<modality>_<split>.csv``, or of a
    folder of examples named ``<category>__<anything>.<ext>`` (in ``<data>/<modality>/`` or ``<data>``),
    such as ``tests/data/pocket``."""
    data = Path(data)
    manifest = data / "manifests" / f"{modality}_{split}.csv"
    if manifest.exists():
        with open(manifest, newline="") as f:
            return list(csv.DictReader(f))
    files = []
    for folder in (data / modality, data):
        files += sorted(p for p in folder.glob("*__*") if p.suffix.lower() in EXAMPLE_SUFFIXES.get(modality, ()))
    if not files:
        raise FileNotFoundError(f"'{data}' has neither manifests/{modality}_{split}.csv (a pocket data "
                                f"directory: python -m pretrain.pocket data --out DIR) nor example files "
                                f"named <category>__*.{{{','.join(e[1:] for e in EXAMPLE_SUFFIXES.get(modality, ()))}}}")
    return [{"path": str(p.relative_to(data)), "label": p.name.split("__")[0].replace("_", " ")} for p in files]


def heldout_sounds(data: "str | Path", split: str = "test", model: Any = None,
                   labels: Sequence[str] | None = None) -> SoundSet:
    """Unit audio embeddings of the held-out clips of ``split`` (optionally only some labels)."""
    import encoders

    data = Path(data)
    rows = [r for r in _rows(data, split) if labels is None or r["label"] in labels]
    if not rows:
        raise ValueError(f"no {split} clips{' of ' + ', '.join(labels) if labels else ''} in '{data}'")
    emb = encoders.embed_audio([str(data / r["path"]) for r in rows], model=model)
    return SoundSet(F.normalize(emb.float(), dim=-1), [r["label"] for r in rows], [r["path"] for r in rows])


def class_sound_embeddings(data: "str | Path", split: str = "test", model: Any = None,
                           labels: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """{label: unit mean of its held-out clips' unit embeddings} -- e.g. the detector's or unCLIP's
    audio "class embedding" of a category, measured on sounds the encoder never trained on."""
    sounds = heldout_sounds(data, split, model, labels)
    out: dict[str, list[torch.Tensor]] = {}
    for e, label in zip(sounds.embeddings, sounds.labels):
        out.setdefault(label, []).append(e)
    return {k: F.normalize(torch.stack(v).mean(0), dim=-1) for k, v in out.items()}


def class_text_embeddings(names: Sequence[str] | None = None, model: Any = None) -> tuple[list[str], torch.Tensor]:
    """(names, [C, D]) class text embeddings from the canonical pocket prompts."""
    from .prompts import CLASS_NAMES, class_text_embeddings as text_emb

    names = list(names or CLASS_NAMES)
    return names, text_emb(names, model=model or "pocket")


def topk_accuracy(scores: torch.Tensor, truth: torch.Tensor, k: int) -> float:
    return float((scores.topk(min(k, scores.shape[1]), dim=1).indices == truth[:, None]).any(1).float().mean())


def zero_shot(embeddings: torch.Tensor, labels: Sequence[str], names: Sequence[str],
              class_emb: torch.Tensor) -> dict:
    """Nearest class embedding among ``names``: top-1/top-5, chance, predictions, per-class recall."""
    index = {n: i for i, n in enumerate(names)}
    missing = sorted({l for l in labels if l not in index})
    if missing:
        raise ValueError(f"labels {missing} are not among the candidate classes")
    truth = torch.tensor([index[l] for l in labels])
    scores = embeddings.float() @ class_emb.float().T
    pred = scores.argmax(1)
    per_class = {}
    for c in sorted(set(labels)):
        m = truth == index[c]
        per_class[c] = float((pred[m] == truth[m]).float().mean())
    return {"n": len(labels), "classes": len(names), "top1": topk_accuracy(scores, truth, 1),
            "top5": topk_accuracy(scores, truth, 5), "chance_top1": 1 / len(names),
            "chance_top5": min(5, len(names)) / len(names), "pred": [names[i] for i in pred.tolist()],
            "true": list(labels), "per_class_top1": per_class}


def audio_zero_shot(sounds: SoundSet, names: Sequence[str] | None = None, text_model: Any = None) -> dict:
    names, cls = class_text_embeddings(names, text_model)
    return zero_shot(sounds.embeddings, sounds.labels, names, cls)


def chance_recall(relevant: int, gallery: int, k: int) -> float:
    """P(at least one of ``relevant`` items of ``gallery`` in a random top k)."""
    from ..evaluate import chance_recall as exact

    return exact(relevant, gallery, k)


def retrieval(queries: torch.Tensor, query_labels: Sequence[str], gallery: torch.Tensor,
              gallery_labels: Sequence[str], ks: Sequence[int] = (1, 5)) -> dict:
    """Class-level recall@k (a hit = a gallery item of the query's label), beside exact chance.
    Queries whose label has no gallery item are left out (and counted)."""
    g = list(gallery_labels)
    keep = [i for i, l in enumerate(query_labels) if l in g]
    sim = queries[keep].float() @ gallery.float().T
    rel = torch.tensor([[query_labels[i] == x for x in g] for i in keep])
    order = sim.argsort(dim=1, descending=True)
    hits = rel.gather(1, order)
    out = {"n": len(keep), "left_out": len(query_labels) - len(keep), "gallery": len(g)}
    for k in ks:
        out[f"R@{k}"] = float(hits[:, :k].any(1).float().mean())
        out[f"chance_R@{k}"] = float(np.mean([chance_recall(int(r.sum()), len(g), k) for r in rel]))
    return out


def heldout_images(data: "str | Path", split: str = "test", model: Any = None) -> tuple[torch.Tensor, list[str], list[str]]:
    """Unit pocket-CLIP image embeddings of the held-out renders of ``split``."""
    import encoders

    data = Path(data)
    rows = _rows(data, split, "images")
    emb = encoders.embed_image([str(data / r["path"]) for r in rows], model=model)
    return F.normalize(emb.float(), dim=-1), [r["label"] for r in rows], [r["path"] for r in rows]


def audio_image_retrieval(sounds: SoundSet, data: "str | Path", split: str = "test", image_model: Any = None,
                          ks: Sequence[int] = (1, 5)) -> dict:
    """Held-out sounds -> held-out renders of ``split`` (class-level hits)."""
    img, img_labels, _ = heldout_images(data, split, image_model)
    return retrieval(sounds.embeddings, sounds.labels, img, img_labels, ks)


def save_json(obj: dict, path: "str | Path") -> Path:
    path = Path(path)
    path.write_text(json.dumps(obj, indent=1) + "\n")
    return path


# ------------------------------------------------------------------------- shipped test examples

# Fixed BEFORE the final models were trained: which categories get a shipped held-out example.
EXAMPLE_AUDIO = ("dog", "cow", "pig", "sheep", "chicken", "bird", "insect", "car", "airplane", "door",
                 "drums", "guitar")
EXAMPLE_DEPTH = ("dog", "cow", "car", "airplane", "guitar", "bell", "train", "chicken")
_LICENSE_RANK = (("CC0", 0), ("CC-BY-3", 1), ("CC-BY-SA", 2), ("free-art", 3), ("GFDL", 4), ("GPL", 5))


def _license_rank(text: str) -> int:
    return next((rank for key, rank in _LICENSE_RANK if text.startswith(key)), 9)


def write_examples(data: "str | Path", dest: "str | Path", audio: Sequence[str] = EXAMPLE_AUDIO,
                   depth: Sequence[str] = EXAMPLE_DEPTH, size: int = 64, margin: float = 1.3) -> list[dict]:
    """Copy held-out TEST examples into ``dest`` by a fixed rule (never by a model's predictions):

    audio: per category, the test clip with the freest licence (CC0 first), then the duration closest
    to 1.5 s -> ``dest/audio/<category>__<file>.wav`` (the data build's 16 kHz mono WAV, unchanged);
    depth: per category, the first fully visible object of >= 32 px in the test scenes (file order)
    -> its ``size`` x ``size`` disparity crop (pixels, float32) ``dest/depth/<category>__<scene>.npy``,
    cut as the depth stage cuts (square, ``margin`` x the box).
    Returns one record per file (for ATTRIBUTION.md).
    """
    import shutil

    from .clip import scene_crop_box
    from .depth_encoder import resize_map
    from .manifests import read_manifest

    data, dest = Path(data), Path(dest)
    out = []
    rows = read_manifest(data / "manifests" / "audio_test.csv")
    (dest / "audio").mkdir(parents=True, exist_ok=True)
    for cat in audio:
        mine = [r for r in rows if r["label"] == cat]
        if not mine:
            raise ValueError(f"no test clip of {cat!r}")
        r = min(mine, key=lambda r: (_license_rank(r["license"]), abs(float(r["duration"]) - 1.5), r["path"]))
        target = dest / "audio" / f"{cat.replace(' ', '_')}__{Path(r['path']).name}"
        shutil.copyfile(data / r["path"], target)
        out.append({"file": str(target.relative_to(dest)), "label": cat, "source": r["source"],
                    "license": r["license"], "from": r["path"]})
    images = {r["path"]: r for r in read_manifest(data / "manifests" / "images_test.csv")}
    scenes = [json.loads(line) for line in (data / "manifests" / "scenes_test.jsonl").read_text().splitlines()]
    (dest / "depth").mkdir(parents=True, exist_ok=True)
    for cat in depth:
        found = None
        for rec in scenes:
            for o in rec["objects"]:
                x0, y0, x1, y1 = o["box"]
                if o["label"] == cat and o["visible_fraction"] >= 1.0 and max(x1 - x0, y1 - y0) >= 32:
                    found = (rec, o)
                    break
            if found:
                break
        if not found:
            raise ValueError(f"no fully visible test-scene object of {cat!r}")
        rec, o = found
        disparity = np.load(data / rec["disparity"])
        box = scene_crop_box(o["box"], disparity.shape[1], disparity.shape[0], margin)
        crop = resize_map(disparity[box[1]:box[3], box[0]:box[2]], size).astype(np.float32)
        target = dest / "depth" / f"{cat.replace(' ', '_')}__{Path(rec['image']).stem}_{o['instance']}.npy"
        np.save(target, crop)
        picture = images.get(o["source_image"], {})
        out.append({"file": str(target.relative_to(dest)), "label": cat,
                    "source": f"{rec['disparity']} (object {o['instance']}: {o['source_image']})",
                    "license": picture.get("license", "see the data build's ATTRIBUTION.md"),
                    "from": rec["disparity"]})
    return out
