"""Evaluation that comes with training: emergent zero-shot classification, retrieval recall@k,
few-shot linear probes -- every figure printed beside its chance level.

    report = evaluate("runs/a/encoder", "ESC-50/meta/esc50.csv", root="ESC-50/audio",
                      teacher=TeacherConfig(model="ViT-H-14", pretrained="laion2b_s32b_b79k"),
                      probe_fold="1")
    print(report.table())

* Zero-shot: class names (``dog_bark`` -> "dog bark") in a prompt ensemble ("a sound of a {}.", ...)
  through the text tower, averaged per class; the class of the nearest prompt embedding wins.
  The text side is the teacher's open_clip text tower (same CLIP as the teacher image tower) or a
  rebind encoder's ``text`` modality (``text_encoder="imagebind_huge"`` with its checkpoint).
* Retrieval R@1/5/10, modality<->text (captions when the manifest has a caption column, else class
  prompts: a hit is a prompt/clip of the query's class) and modality<->image (a paired image
  column, or an image manifest whose labels define the hits). Chance is exact:
  1 - C(G - r, k) / C(G, k) for a query with r relevant items among G.
* Few-shot probe (paper Figure 3): multinomial logistic regression on the frozen unit embeddings,
  k = 1, 2, 4, 8 examples per class drawn from the training pool (the folds other than
  ``probe_fold``, or a stratified half), tested on the rest, mean +- std over seeds.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import encoders
from encoders.spaces import check_same_space, get_space

from .config import TeacherConfig
from .data import BadFiles, ImageRef, load_image_ref, load_rows, read_manifest, resolve

log = logging.getLogger(__name__)

AUDIO_PROMPTS = ("a sound of a {}.", "the sound of {}.", "a recording of {}.", "the sound of a {}.",
                 "a sound of the {}.", "{}")
DEPTH_PROMPTS = ("a depth photo of a {}.", "a depth map of the {}.", "a photo of a {}.", "{}")
PROMPTS = {"audio": AUDIO_PROMPTS, "depth": DEPTH_PROMPTS, "thermal": ("a thermal photo of a {}.", "{}"),
           "imu": ("{}",)}


@dataclass
class Figure:
    group: str
    name: str
    value: float
    chance: float
    std: float | None = None
    n: int = 0

    def line(self) -> str:
        std = f" +- {100 * self.std:4.1f}" if self.std is not None else "        "
        return f"  {self.name:<28s} {100 * self.value:6.1f}%{std}   chance {100 * self.chance:5.1f}%   (n={self.n})"


@dataclass
class EvalReport:
    figures: list[Figure] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def add(self, group: str, name: str, value: float, chance: float, std: float | None = None, n: int = 0):
        self.figures.append(Figure(group, name, float(value), float(chance), std, n))

    def __getitem__(self, name: str) -> Figure:
        for f in self.figures:
            if f.name == name:
                return f
        raise KeyError(f"no figure named {name!r}; have {[f.name for f in self.figures]}")

    def table(self) -> str:
        lines, group = [], None
        head = ", ".join(f"{k}={v}" for k, v in self.info.items() if k in ("encoder", "space", "items", "classes"))
        lines.append(f"evaluation ({head})")
        for f in self.figures:
            if f.group != group:
                group = f.group
                lines.append(group)
            lines.append(f.line())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"info": self.info, "figures": [asdict(f) for f in self.figures]}

    def save(self, path: "str | os.PathLike") -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


# ------------------------------------------------------------------------------------- encoders

def load_encoder(source: Any, modality: str = "audio", checkpoint: Any = None,
                 device: Any = None) -> encoders.ModalityEncoder:
    """A saved encoder folder (registers its space.json), a config name (+ checkpoint), or a model."""
    if isinstance(source, encoders.ModalityEncoder):
        return source
    if isinstance(source, encoders.MultimodalEncoder):
        return source[modality]
    folder = Path(str(source)).expanduser()
    if folder.is_dir():
        if (folder / "space.json").exists():
            from .teacher import register_space_record

            register_space_record(json.loads((folder / "space.json").read_text()))
        model = encoders.create(folder, modalities=(modality,), checkpoint=checkpoint, device=device)
    else:
        model = encoders.create(str(source), modalities=(modality,), checkpoint=checkpoint, device=device)
    return model[modality].eval()


class TextSide:
    """Text embeddings in some space: the teacher's open_clip text tower or a rebind text encoder."""

    def __init__(self, space, encode):
        self.space, self._encode = get_space(space), encode

    @classmethod
    def from_teacher(cls, teacher_cfg: "TeacherConfig | dict", base_dir=None, device="cpu") -> "TextSide":
        from encoders.config import from_dict

        from .teacher import load_teacher

        if isinstance(teacher_cfg, dict):
            teacher_cfg = from_dict(TeacherConfig, teacher_cfg, "teacher")
        t = load_teacher(teacher_cfg, base_dir, device, text=True)
        return cls(t.space, t.encode_texts)

    @classmethod
    def from_encoder(cls, source: Any, checkpoint: Any = None, device=None) -> "TextSide":
        enc = load_encoder(source, "text", checkpoint, device)
        return cls(enc.space, lambda texts: F.normalize(enc.embed(list(texts), output="unit").float(), dim=-1))

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        return F.normalize(self._encode(list(texts)).float().cpu(), dim=-1)


def class_name(label: str) -> str:
    return label.replace("_", " ").replace("-", " ").strip()


def class_embeddings(text: TextSide, classes: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
    """[C, D]: the normalized mean of each class's prompt embeddings (a prompt ensemble)."""
    texts = [p.format(class_name(c)) for c in classes for p in prompts]
    z = text.encode(texts).view(len(classes), len(prompts), -1)
    return F.normalize(z.mean(1), dim=-1)


def embed_paths(enc: encoders.ModalityEncoder, paths: Sequence[Path], bad: BadFiles, batch_size: int = 32,
                progress: bool = False) -> tuple[torch.Tensor, list[int]]:
    """Unit embeddings of the readable files; bad ones reported (path + reason) and left out."""
    chunks = range(0, len(paths), batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"embed {enc.modality}", unit="batch")
    out, keep = [], []
    for i in chunks:
        part = list(range(i, min(i + batch_size, len(paths))))
        try:
            out.append(enc.embed([paths[j] for j in part], output="unit", batch_size=batch_size).float().cpu())
            keep += part
        except Exception:
            for j in part:  # find the bad file(s) of this batch
                try:
                    out.append(enc.embed([paths[j]], output="unit").float().cpu())
                    keep.append(j)
                except Exception as e:
                    bad.report(str(paths[j]), e)
    if not out:
        raise RuntimeError("no file could be embedded; see the bad-file reports above")
    return torch.cat(out), keep


# -------------------------------------------------------------------------------------- metrics

def chance_recall(relevant: int, gallery: int, k: int) -> float:
    """P(a random ranking puts >= 1 of ``relevant`` items of ``gallery`` in its top k)."""
    if relevant <= 0:
        return 0.0
    if gallery - relevant < k:
        return 1.0
    return 1.0 - math.exp(math.lgamma(gallery - relevant + 1) - math.lgamma(gallery - relevant - k + 1)
                          - math.lgamma(gallery + 1) + math.lgamma(gallery - k + 1))


def recall_at_k(sim: torch.Tensor, relevant: torch.Tensor, ks: Sequence[int]) -> dict[int, tuple[float, float]]:
    """sim [Q, G], relevant [Q, G] bool -> {k: (recall, chance)} over queries with >= 1 relevant item."""
    has = relevant.any(1)
    sim, relevant = sim[has], relevant[has]
    order = sim.argsort(dim=1, descending=True)
    hits = relevant.gather(1, order)
    g = sim.shape[1]
    counts = relevant.sum(1).tolist()
    out = {}
    for k in ks:
        if k >= g and k != min(ks):  # every item is in the top k: nothing to measure
            continue
        k_ = min(k, g)
        rec = hits[:, :k_].any(1).float().mean().item()
        ch = float(np.mean([chance_recall(r, g, k_) for r in counts]))
        out[k] = (rec, ch)
    return out


def fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float = 1e-3,
              steps: int = 100) -> torch.nn.Linear:
    """Multinomial logistic regression (L-BFGS, L2) on frozen features."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], classes)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(x), y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def few_shot(feats: torch.Tensor, labels: torch.Tensor, train_pool: np.ndarray, test: np.ndarray,
             classes: int, shots: Sequence[int], seeds: int = 3) -> dict[int, tuple[float, float, int]]:
    """{k: (mean accuracy, std, test size)} of k-shot linear probes."""
    out = {}
    y_np = labels.numpy()
    for k in shots:
        accs = []
        for s in range(seeds):
            rng = np.random.default_rng([s, k, 23])
            picked = []
            for c in range(classes):
                pool = train_pool[y_np[train_pool] == c]
                if len(pool):
                    picked += rng.choice(pool, size=min(k, len(pool)), replace=False).tolist()
            idx = torch.tensor(picked)
            lin = fit_probe(feats[idx], labels[idx], classes)
            with torch.no_grad():
                pred = lin(feats[torch.from_numpy(test)]).argmax(1)
            accs.append((pred == labels[torch.from_numpy(test)]).float().mean().item())
        out[k] = (float(np.mean(accs)), float(np.std(accs)), len(test))
    return out


# ----------------------------------------------------------------------------------- evaluation

def evaluate(encoder: Any, manifest: "str | os.PathLike", root: "str | os.PathLike | None" = None, *,
             modality: str = "audio", checkpoint: Any = None,
             teacher: "TeacherConfig | dict | None" = None, text_encoder: Any = None,
             text_checkpoint: Any = None, prompts: Sequence[str] | None = None,
             path_column: str | None = None, label_column: str | None = None,
             caption_column: str | None = None, image_column: str = "image",
             images: "str | os.PathLike | None" = None, images_root: "str | os.PathLike | None" = None,
             shots: Sequence[int] = (1, 2, 4, 8), probe_fold: str | None = None, fold_column: str = "fold",
             probe_seeds: int = 3, bridge: Any = None, batch_size: int = 32, device: Any = None,
             on_bad_file: str = "skip", progress: bool = True, base_dir: str | None = None,
             ks: Sequence[int] = (1, 5, 10)) -> EvalReport:
    """Evaluate a ``modality`` encoder on a labelled manifest; see the module docstring.

    encoder: a saved encoder folder, a config name (+ ``checkpoint``: e.g. ``imagebind_huge`` with
        ``imagebind_huge.pth``), or a (Multi)ModalityEncoder.
    teacher / text_encoder: the text side (and image side, for teacher). ``text_encoder="same"``
        uses the encoder config's own ``text`` modality with ``text_checkpoint`` (or ``checkpoint``).
    bridge: a ``Bridge`` (or its file) that maps the encoder's space into the text side's space.
    """
    from encoders.bridge import Bridge

    enc = load_encoder(encoder, modality, checkpoint, device)
    report = EvalReport(info={"encoder": str(encoder) if not isinstance(encoder, torch.nn.Module) else type(encoder).__name__,
                              "space": enc.space.name, "manifest": str(manifest)})
    bad = BadFiles(on_bad_file)
    rows = load_rows(manifest, root, modality, path_column, label_column, image_column, caption_column,
                     require_label=False)
    if text_encoder is not None:
        src = encoder if text_encoder == "same" else text_encoder
        text = TextSide.from_encoder(src, text_checkpoint or (checkpoint if text_encoder == "same" else None))
    elif teacher is not None:
        text = TextSide.from_teacher(teacher, base_dir)
    else:
        text = None
    if bridge is not None and not isinstance(bridge, Bridge):
        bridge = Bridge.load(bridge)
    emb, keep = embed_paths(enc, [r.path for r in rows], bad, batch_size, progress)
    rows = [rows[i] for i in keep]
    space = enc.space
    if bridge is not None:
        check_same_space(space, bridge.source, f"{modality} embedding (bridge input)")
        emb, space = bridge(emb), bridge.target
        report.info["bridge"] = f"{bridge.source.name} -> {bridge.target.name} ({bridge.method})"
    report.info.update(items=len(rows), bad_files=len(bad))
    labelled = all(r.label is not None for r in rows)
    classes = sorted({r.label for r in rows}) if labelled else []
    y = torch.tensor([classes.index(r.label) for r in rows]) if labelled else None
    if labelled:
        report.info["classes"] = len(classes)
    prompts = tuple(prompts) if prompts else PROMPTS.get(modality, ("{}",))

    if text is not None:
        check_same_space(space, text.space, f"{modality} embedding")
        if labelled:
            cls = class_embeddings(text, classes, prompts)
            logits = emb @ cls.T
            c = len(classes)
            for k in (1, 5):
                if k == 1 or c > k:
                    topk = logits.topk(k, dim=1).indices
                    acc = (topk == y[:, None]).any(1).float().mean().item()
                    report.add("emergent zero-shot classification", f"zero-shot top-{k}", acc, k / c, n=len(rows))
        if any(r.caption for r in rows):
            caps = [r.caption or "" for r in rows]
            tz = text.encode(caps)
            rel = torch.tensor([[a == b for b in caps] for a in caps])
            for name, sim, r in ((f"{modality}->text", emb @ tz.T, rel), (f"text->{modality}", tz @ emb.T, rel.T)):
                for k, (v, ch) in recall_at_k(sim, r, ks).items():
                    report.add("retrieval (captions)", f"{name} R@{k}", v, ch, n=len(rows))
        elif labelled:
            rel = y[:, None] == torch.arange(len(classes))[None]
            for name, sim, r in ((f"{modality}->text", emb @ cls.T, rel), (f"text->{modality}", cls @ emb.T, rel.T)):
                for k, (v, ch) in recall_at_k(sim, r, ks).items():
                    report.add("retrieval (class prompts)", f"{name} R@{k}", v, ch, n=sim.shape[0])

    # modality <-> image
    image_refs, image_rel = None, None
    if any(r.image for r in rows):
        image_refs = [ImageRef(r.image_key, r.image) for r in rows]
        keys = [r.image_key for r in rows]
        image_rel = torch.tensor([[a == b for b in keys] for a in keys])
    elif images is not None and labelled:
        irows, cols = read_manifest(images)
        iroot = Path(images_root) if images_root else Path(images).parent
        icol = "image" if "image" in cols else cols[0]
        lcol = next(c for c in ("label", "category", "class") if c in cols)
        image_refs = [ImageRef(r[icol], resolve(r[icol], iroot)) for r in irows]
        ilabels = [r[lcol] for r in irows]
        image_rel = torch.tensor([[r.label == lab for lab in ilabels] for r in rows])
    if image_refs is not None:
        if teacher is None:
            log.warning("modality<->image retrieval needs the teacher's image tower (teacher=...); skipped")
        else:
            from .teacher import load_teacher

            tcfg = teacher
            if isinstance(tcfg, dict):
                from encoders.config import from_dict

                tcfg = from_dict(TeacherConfig, tcfg, "teacher")
            t = load_teacher(tcfg, base_dir, "cpu")
            check_same_space(space, t.space, f"{modality} embedding")
            tf = t.transform(train=False)
            zs, ok = [], []
            for i, ref in enumerate(image_refs):
                try:
                    zs.append(tf(load_image_ref(ref)))
                    ok.append(i)
                except Exception as e:
                    bad.report(ref.describe(), e)
            iz = torch.cat([t.encode_images(torch.stack(zs[i: i + batch_size])).cpu()
                            for i in range(0, len(zs), batch_size)])
            rel = image_rel[:, ok]
            for name, sim, r in ((f"{modality}->image", emb @ iz.T, rel), (f"image->{modality}", iz @ emb.T, rel.T)):
                for k, (v, ch) in recall_at_k(sim, r, ks).items():
                    report.add("retrieval (images)", f"{name} R@{k}", v, ch, n=sim.shape[0])

    # few-shot linear probe
    if labelled and shots:
        idx = np.arange(len(rows))
        if probe_fold is not None:
            if any(fold_column not in r.fields for r in rows):
                raise ValueError(f"probe_fold needs a {fold_column!r} column in '{manifest}'")
            fold = np.array([r.fields[fold_column] for r in rows])
            test, pool = idx[fold == str(probe_fold)], idx[fold != str(probe_fold)]
            if len(test) == 0:
                raise ValueError(f"probe_fold {probe_fold!r}: no rows have {fold_column}={probe_fold!r}")
        else:  # stratified halves
            rng = np.random.default_rng(0)
            test_l, pool_l = [], []
            for c in range(len(classes)):
                members = rng.permutation(idx[y.numpy() == c])
                half = max(1, len(members) // 2)
                pool_l += members[:half].tolist()
                test_l += members[half:].tolist()
            test, pool = np.array(sorted(test_l)), np.array(sorted(pool_l))
        smallest = min(int((y[torch.from_numpy(pool)] == c).sum()) for c in range(len(classes))) if len(pool) else 0
        usable = [k for k in shots if k <= smallest]
        if len(usable) < len(shots):
            report.info["few_shot_skipped"] = f"k > {smallest} (the smallest class has {smallest} training examples)"
        if len(test) and usable:
            for k, (m, s, n) in few_shot(emb, y, pool, test, len(classes), usable, probe_seeds).items():
                report.add("few-shot linear probe", f"{k}-shot", m, 1 / len(classes), std=s, n=n)
    report.info["bad_files"] = len(bad)
    return report
