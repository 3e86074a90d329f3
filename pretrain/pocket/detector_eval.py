"""AP of the pocket detector on held-out scenes, prompted with text, image or audio embeddings.

    report = evaluate_detector(model, scenes, {"text": text_emb, "audio": audio_emb}, names)
    report["audio"]["ap50"], report["audio"]["per_class"]["dog"]["ap50"]

The box branch of a Detic-style detector does not depend on the vocabulary: proposals, objectness,
box features and box deltas are computed ONCE per image (``SceneFeatures``); each vocabulary then
only runs the classifier and the detector's own ``postprocess`` (Detic's scoring, one class per
box, NMS) -- the same functions ``detector.detect`` runs, so the figures are what users get.

AP: COCO-style, per class, 101-point interpolated precision, a detection matches the best-IoU
unmatched ground-truth box of its class; AP50 at IoU 0.5, AP50:95 the mean over 0.50:0.05:0.95.
The mean is over the classes of the vocabulary with at least one ground-truth box in the scenes.
Objects whose class is not in the vocabulary are ignored as ground truth (a detection on them is
a false positive of whatever class it claims).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))
EVAL_SCORE_THRESHOLD = 0.01  # keep nearly everything for the PR curve (Detic's test default is 0.02)


@dataclass
class ImageFeatures:
    box_features: torch.Tensor  # [N, R] box-head output (the classifier's input)
    box_regression: torch.Tensor  # [N, 4] class-agnostic deltas
    proposals: torch.Tensor  # [N, 4] in the transformed image
    proposal_scores: torch.Tensor  # [N] objectness
    image_size: tuple[int, int]  # transformed (h, w)
    original_size: tuple[int, int]  # input (h, w)


class SceneFeatures:
    """The vocabulary-independent half of the detector's forward pass for a list of images."""

    def __init__(self, model, images: list[torch.Tensor], batch_size: int = 8):
        self.model = model
        self.items: list[ImageFeatures] = []
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for k in range(0, len(images), batch_size):
                    self.items += self._extract(images[k:k + batch_size])
        finally:
            model.train(was_training)

    def _extract(self, images: list[torch.Tensor]) -> list[ImageFeatures]:
        m = self.model
        originals = [tuple(img.shape[-2:]) for img in images]
        image_list, _ = m.transform(images)
        features = m.backbone(image_list.tensors)
        proposals, proposal_scores, _ = m.rpn(image_list, features)
        roi = m.roi_heads
        box_features = roi.box_head(roi.box_roi_pool(features, proposals, image_list.image_sizes))
        box_regression = roi.box_predictor.bbox_pred(box_features.flatten(start_dim=1))
        out, start = [], 0
        for p, s, size, original in zip(proposals, proposal_scores, image_list.image_sizes, originals):
            n = len(p)
            out.append(ImageFeatures(box_features[start:start + n], box_regression[start:start + n], p, s,
                                     tuple(size), original))
            start += n
        return out

    def detect(self, class_embeddings: torch.Tensor, names: list[str],
               threshold: float = EVAL_SCORE_THRESHOLD) -> list[dict[str, torch.Tensor]]:
        """Detections (boxes in input pixels, scores, labels) of every image for this vocabulary."""
        m = self.model
        results = []
        with torch.inference_mode(), m.prompted(class_embeddings, names=names):
            for f in self.items:
                logits = m.classifier(f.box_features.flatten(start_dim=1))
                det = m.roi_heads.postprocess(logits, f.box_regression, [f.proposals], [f.proposal_scores],
                                              [f.image_size], threshold)
                results += m.transform.postprocess(det, [f.image_size], [f.original_size])
        return results


# ----------------------------------------------------------------------------------------- AP

def _ap_from_pr(tp: np.ndarray, num_gt: int) -> float:
    """101-point interpolated AP (COCO) from the TP flags of score-sorted detections."""
    if num_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / num_gt
    precision = ctp / np.arange(1, len(tp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the precision envelope
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


def match_detections(detections: list[dict], ground_truth: list[dict], num_classes: int,
                     iou_threshold: float) -> tuple[dict[int, list], dict[int, int]]:
    """-> ({class: [(score, is_tp), ...]}, {class: number of ground-truth boxes}).

    ground_truth: per image {"boxes": [K, 4], "labels": [K]} with labels in the vocabulary's
    indices (-1 for objects outside it: ignored)."""
    scored: dict[int, list] = {c: [] for c in range(num_classes)}
    num_gt = {c: 0 for c in range(num_classes)}
    for det, gt in zip(detections, ground_truth):
        for c in range(num_classes):
            gt_boxes = gt["boxes"][gt["labels"] == c]
            num_gt[c] += len(gt_boxes)
            keep = det["labels"] == c
            boxes, scores = det["boxes"][keep], det["scores"][keep]
            if len(scores) == 0:
                continue
            order = scores.argsort(descending=True)
            boxes, scores = boxes[order], scores[order]
            taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
            ious = box_iou(boxes, gt_boxes) if len(gt_boxes) else torch.zeros(len(boxes), 0)
            for i in range(len(boxes)):
                hit = False
                if ious.shape[1]:
                    cand = ious[i].clone()
                    cand[taken] = -1
                    j = int(cand.argmax())
                    if cand[j] >= iou_threshold:
                        taken[j] = True
                        hit = True
                scored[c].append((float(scores[i]), hit))
    return scored, num_gt


def average_precision(detections: list[dict], ground_truth: list[dict], names: list[str]) -> dict:
    """AP50, AP50:95 (means over classes with ground truth) and per-class APs."""
    per_class = {n: {"num_gt": 0} for n in names}
    for t in IOU_THRESHOLDS:
        scored, num_gt = match_detections(detections, ground_truth, len(names), float(t))
        for c, name in enumerate(names):
            pairs = sorted(scored[c], key=lambda p: -p[0])
            ap = _ap_from_pr(np.array([hit for _, hit in pairs], dtype=float), num_gt[c])
            per_class[name][f"ap{int(round(t * 100))}"] = ap
            per_class[name]["num_gt"] = num_gt[c]
    for name in names:
        aps = [per_class[name][f"ap{int(round(t * 100))}"] for t in IOU_THRESHOLDS]
        per_class[name]["ap50_95"] = float(np.mean(aps)) if per_class[name]["num_gt"] else float("nan")
    with_gt = [n for n in names if per_class[n]["num_gt"] > 0]
    return {"ap50": float(np.mean([per_class[n]["ap50"] for n in with_gt])) if with_gt else float("nan"),
            "ap50_95": float(np.mean([per_class[n]["ap50_95"] for n in with_gt])) if with_gt else float("nan"),
            "classes_with_gt": len(with_gt), "per_class": per_class}


def precision_recall_at(detections: list[dict], ground_truth: list[dict], num_classes: int,
                        threshold: float, iou_threshold: float = 0.5) -> dict:
    """Precision and recall of the detections scoring strictly above ``threshold`` (all classes)."""
    kept = [{k: v[d["scores"] > threshold] for k, v in d.items()} for d in detections]
    scored, num_gt = match_detections(kept, ground_truth, num_classes, iou_threshold)
    tp = sum(hit for c in scored for _, hit in scored[c])
    found = sum(len(scored[c]) for c in scored)
    total_gt = sum(num_gt.values())
    return {"threshold": threshold, "detections": found, "true_positives": int(tp),
            "precision": tp / found if found else float("nan"), "recall": tp / total_gt if total_gt else float("nan")}


def vocabulary_targets(targets: list[dict], all_names: list[str], names: list[str]) -> list[dict]:
    """Re-index ground-truth labels (indices into ``all_names``) into ``names`` (-1: not in it)."""
    remap = torch.tensor([names.index(n) if n in names else -1 for n in all_names])
    return [{"boxes": t["boxes"], "labels": remap[t["labels"]]} for t in targets]


def evaluate_detector(model, scenes, prompts: dict[str, torch.Tensor], names: list[str],
                      all_names: list[str] | None = None, thresholds: tuple[float, ...] = (0.5, 0.9),
                      features: SceneFeatures | None = None) -> dict:
    """AP of ``model`` on ``scenes`` (a detector.SceneSet) for each named vocabulary.

    prompts: name -> [len(names), D] class embeddings (e.g. {"text": ..., "image": ..., "audio": ...}),
        row c standing for class ``names[c]``.
    all_names: the names the scenes' target labels index (default: detector.CLASS_NAMES).
    """
    from .detector import CLASS_NAMES  # noqa: PLC0415

    all_names = list(all_names or CLASS_NAMES)
    if features is None:
        features = SceneFeatures(model, [img.float() / 255.0 for img in scenes.images])
    gt = vocabulary_targets(scenes.targets, all_names, names)
    report = {}
    for key, emb in prompts.items():
        if emb.shape[0] != len(names):
            raise ValueError(f"prompts[{key!r}] has {emb.shape[0]} rows for {len(names)} names")
        dets = features.detect(emb, names)
        report[key] = average_precision(dets, gt, names)
        report[key]["at_threshold"] = {str(t): precision_recall_at(dets, gt, len(names), t) for t in thresholds}
    return report


# ------------------------------------------------------------------- prompt sets of the pocket world

def mean_unit(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.nn.functional.normalize(vectors.float(), dim=-1).mean(0), dim=-1)


def modality_rows(data, modality: str, split: str) -> list[dict]:
    """The manifest rows of a split's renders ("image") or clips ("audio")."""
    from pathlib import Path  # noqa: PLC0415

    from .manifests import AUDIO_COLUMNS, IMAGE_COLUMNS, read_manifest  # noqa: PLC0415

    kind, columns = {"image": ("images", IMAGE_COLUMNS), "audio": ("audio", AUDIO_COLUMNS)}[modality]
    return read_manifest(Path(data) / "manifests" / f"{kind}_{split}.csv", columns)


def embed_rows(data, rows: list[dict], modality: str, clip) -> torch.Tensor:
    """[N, D] unit embeddings of manifest rows through the public encoders (what users get)."""
    from pathlib import Path  # noqa: PLC0415

    import encoders  # noqa: PLC0415

    paths = [str(Path(data) / r["path"]) for r in rows]
    if modality == "image":
        return encoders.embed_image(paths, model=clip).float()
    return encoders.embed_audio(paths, model=clip).float()


def has_modality(clip, modality: str) -> tuple[bool, str]:
    """Whether the CLIP config has a usable ``modality`` encoder (and why not)."""
    import encoders  # noqa: PLC0415

    try:
        encoders.resolve_encoder(clip, {"image": "vision"}.get(modality, modality))
    except Exception as err:  # noqa: BLE001 - any failure means: not available here
        return False, f"{type(err).__name__}: {err}"
    return True, ""


@dataclass
class PromptSet:
    """Class embeddings of one modality for the classes it can stand for."""

    modality: str
    names: list[str]
    mean: torch.Tensor  # [C, D]: mean unit embedding of each class's held-out items
    items: dict[str, torch.Tensor]  # name -> [k, D] every held-out item (per-item draws)


def modality_prompts(data, modality: str, split: str, clip, names: list[str]) -> PromptSet:
    rows = [r for r in modality_rows(data, modality, split) if r["label"] in names]
    emb = embed_rows(data, rows, modality, clip)
    labels = [r["label"] for r in rows]
    present = [n for n in names if n in labels]
    items = {n: emb[[i for i, lab in enumerate(labels) if lab == n]] for n in present}
    return PromptSet(modality, present, torch.stack([mean_unit(items[n]) for n in present]), items)


def per_item_draws(features: SceneFeatures, prompts: PromptSet, gt_all: list[dict], all_names: list[str],
                   draws: int, seed: int = 0) -> dict:
    """mAP when each class is prompted with ONE random held-out item (a clip, a render): ``draws``
    vocabularies, one seeded draw per class each."""
    gen = torch.Generator().manual_seed(seed)
    gt = vocabulary_targets(gt_all, all_names, prompts.names)
    aps, ap_per_class = [], {n: [] for n in prompts.names}
    for _ in range(draws):
        emb = torch.stack([prompts.items[n][torch.randint(len(prompts.items[n]), (), generator=gen)]
                           for n in prompts.names])
        rep = average_precision(features.detect(emb, prompts.names), gt, prompts.names)
        aps.append(rep["ap50"])
        for n in prompts.names:
            ap_per_class[n].append(rep["per_class"][n]["ap50"])
    return {"draws": draws, "ap50_mean": float(np.mean(aps)), "ap50_std": float(np.std(aps)),
            "per_class_ap50_mean": {n: float(np.nanmean(v)) for n, v in ap_per_class.items()}}


def evaluate_pocket_detector(data, detector=None, clip="pocket", split: str = "test",
                             modalities: tuple[str, ...] = ("text", "image", "audio"), draws: int = 10,
                             thresholds: tuple[float, ...] = (0.5, 0.9), log=print) -> dict:
    """The pocket detector's figures on held-out scenes.

    text:  classifier = the CLIP's text embeddings of every category (prompts.class_text_embeddings).
    image: classifier = mean image embedding of each class's held-out renders (the renders the
           held-out scenes are composed of: the middle point between text and audio).
    audio: classifier = mean audio embedding of each class's held-out clips, over the classes
           that have held-out clips; ``audio_per_clip``: one random held-out clip per class,
           ``draws`` times. Each non-text prompt set is compared with text prompts over the SAME
           vocabulary (``text_same_vocabulary``, ``ratio_to_text``).
    """
    from adapters.detic.prompts import load_detector  # noqa: PLC0415

    from .detector import CLASS_NAMES, SceneSet, class_text_embeddings  # noqa: PLC0415

    model = load_detector(detector)
    all_names = list(CLASS_NAMES)
    scenes = SceneSet.load(data, split)
    features = SceneFeatures(model, [img.float() / 255.0 for img in scenes.images])
    text = class_text_embeddings(all_names, clip).float()
    report: dict = {"split": split, "scenes": len(scenes), "objects": sum(len(t["labels"]) for t in scenes.targets)}

    def run(emb, names, key):
        gt = vocabulary_targets(scenes.targets, all_names, names)
        dets = features.detect(emb, names)
        out = average_precision(dets, gt, names)
        out["vocabulary"] = len(names)
        out["at_threshold"] = {str(t): precision_recall_at(dets, gt, len(names), t) for t in thresholds}
        log(f"{key:>28}: AP50 {out['ap50']:.3f}  AP50:95 {out['ap50_95']:.3f}  "
            f"({len(names)} classes, {out['classes_with_gt']} with objects)")
        return out

    report["text"] = run(text, all_names, "text")
    for modality in modalities:
        if modality == "text":
            continue
        ok, why = has_modality(clip, modality)
        if not ok:
            report[modality] = {"skipped": f"no {modality} encoder: {why}"}
            log(f"{modality:>28}: skipped ({why.splitlines()[0][:120]})")
            continue
        prompts = modality_prompts(data, modality, split, clip, all_names)
        same = torch.stack([text[all_names.index(n)] for n in prompts.names])
        entry = run(prompts.mean, prompts.names, f"{modality} (mean of held-out)")
        entry["text_same_vocabulary"] = run(same, prompts.names, f"text, {modality} vocabulary")
        entry["ratio_to_text"] = entry["ap50"] / entry["text_same_vocabulary"]["ap50"]
        entry["classes"] = prompts.names
        entry["per_item"] = per_item_draws(features, prompts, scenes.targets, all_names, draws)
        log(f"{modality + ' per item':>28}: AP50 {entry['per_item']['ap50_mean']:.3f} "
            f"+- {entry['per_item']['ap50_std']:.3f} ({draws} draws)")
        report[modality] = entry
    return report


# ------------------------------------------------------------------------------------- overlays

def grid(images: list, columns: int, pad: int = 4):
    """PIL images of one size -> one image, row by row."""
    from PIL import Image  # noqa: PLC0415

    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    out = Image.new("RGB", (columns * w + (columns - 1) * pad, rows * h + (rows - 1) * pad), "white")
    for k, im in enumerate(images):
        out.paste(im, ((k % columns) * (w + pad), (k // columns) * (h + pad)))
    return out


def text_overlays(detector, images: list, names: list[str], embeddings: torch.Tensor,
                  threshold: float = 0.9, columns: int = 4):
    """Each image with the detections of the text-prompted vocabulary above ``threshold``."""
    from adapters.detic.prompts import load_detector  # noqa: PLC0415

    detector = load_detector(detector)
    with detector.prompted(embeddings, names=names, threshold=threshold) as prompted:
        found = [prompted.detect(im) for im in images]
    return grid([f.draw(im) for f, im in zip(found, images)], columns), found


def audio_demo(detector, clips: dict[str, str], images: list, threshold: float = 0.9, clip="pocket",
               best_only: bool = False):
    """Rows: one per clip (``{name: path}``, each a one-class audio prompt through
    ``adapters.detic.from_audio``); columns: the images. ``best_only``: draw each image's single best
    box whatever its score (where the prompt points, and how sure it is, beside the other scenes)."""
    import dataclasses  # noqa: PLC0415

    import adapters.detic as detic  # noqa: PLC0415

    tiles, found = [], {}
    for name, path in clips.items():
        with detic.from_audio(path, detector=detector, threshold=0.0 if best_only else threshold, names=[name],
                              encoder=clip) as p:
            found[name] = [p.detect(im) for im in images]
        if best_only:  # detections come highest score first
            found[name] = [dataclasses.replace(f, boxes=f.boxes[:1], scores=f.scores[:1], labels=f.labels[:1],
                                               masks=None if f.masks is None else f.masks[:1]) for f in found[name]]
        tiles += [f.draw(im) for f, im in zip(found[name], images)]
    return grid(tiles, len(images)), found


# -------------------------------------------------------------------------------------- tables

def per_class_table(report: dict) -> str:
    """Markdown: AP50 per class for each prompt set (blank: the class is not in that vocabulary)."""
    keys = [k for k in ("text", "image", "audio") if isinstance(report.get(k), dict) and "per_class" in report[k]]
    names = list(report["text"]["per_class"])
    lines = ["| class | objects | " + " | ".join(f"AP50 {k}" for k in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for n in names:
        num = report["text"]["per_class"][n]["num_gt"]
        if not num:
            continue
        cells = []
        for k in keys:
            pc = report[k]["per_class"].get(n)
            cells.append("" if pc is None else f"{pc['ap50']:.2f}")
        lines.append(f"| {n} | {num} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(report: dict) -> str:
    rows = ["| classifier | classes | AP50 | AP50:95 | text AP50, same classes | ratio | per item AP50 | "
            "precision@0.9 | recall@0.9 |", "|---|---|---|---|---|---|---|---|---|"]
    for k in ("text", "image", "audio"):
        e = report.get(k)
        if not isinstance(e, dict):
            continue
        if "skipped" in e:
            rows.append(f"| {k} | skipped: {e['skipped'][:80]} | | | | | | | |")
            continue
        at = e["at_threshold"]["0.9"]
        same, ratio, item = "", "", ""
        if "text_same_vocabulary" in e:
            same = f"{e['text_same_vocabulary']['ap50']:.3f}"
            ratio = f"{e['ratio_to_text']:.2f}"
        if "per_item" in e:
            item = f"{e['per_item']['ap50_mean']:.3f} ± {e['per_item']['ap50_std']:.3f}"
        rows.append(f"| {k} | {e['classes_with_gt']} | {e['ap50']:.3f} | {e['ap50_95']:.3f} | {same} | {ratio} | "
                    f"{item} | {at['precision']:.3f} | {at['recall']:.3f} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------ CLI

def add_arguments(p) -> None:
    from pathlib import Path  # noqa: PLC0415

    p.add_argument("--data", type=Path, required=True, help="pocket data directory (python -m pretrain.pocket data)")
    p.add_argument("--detector", type=Path, default=None,
                   help="saved detector folder (default: the shipped adapters/weights/pocket_detector)")
    p.add_argument("--clip", default="pocket", help="encoder config for text/image/audio prompts (default pocket)")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--draws", type=int, default=10, help="random one-item-per-class vocabularies (per-clip AP)")
    p.add_argument("--report", type=Path, default=None, help="JSON report (default: <detector>/eval.json)")
    p.add_argument("--figures", type=Path, default=None,
                   help="write overlays at threshold 0.9 and the per-class chart here (default: none)")
    p.add_argument("--threads", type=int, default=1)


def run(args) -> int:
    import json  # noqa: PLC0415

    from adapters.detic.prompts import DEFAULT_DETECTOR_DIR  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    detector = args.detector or DEFAULT_DETECTOR_DIR
    report = evaluate_pocket_detector(args.data, detector, args.clip, args.split, draws=args.draws)
    path = args.report or (detector / "eval.json")
    path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(summary_table(report))
    print()
    print(per_class_table(report))
    if args.figures is not None:
        for written in write_figures(args.data, detector, args.figures, args.clip, report):
            print(f"wrote {written}")
    print(f"wrote {path}")
    return 0


def plot_per_class(report: dict, path) -> None:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = [k for k in ("text", "image", "audio") if isinstance(report.get(k), dict) and "per_class" in report[k]]
    names = [n for n, v in report["text"]["per_class"].items() if v["num_gt"]]
    x = np.arange(len(names))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(8, 0.32 * len(names)), 3.8))
    for i, k in enumerate(keys):
        values = [report[k]["per_class"].get(n, {}).get("ap50", np.nan) for n in names]
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, values, width, label=f"{k} ({report[k]['ap50']:.2f})")
    ax.set_xticks(x, names, rotation=70, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP50")
    ax.set_title(f"pocket detector, held-out {report['split']} scenes: AP50 per class by classifier")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_figures(data, detector, folder, clip="pocket", report: dict | None = None,
                  threshold: float = 0.9, test_scenes: int = 5) -> list:
    """Overlays at ``threshold`` (text-prompted, every category; the audio dog demo when the CLIP
    has an audio encoder) and the per-class AP chart."""
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    from .detector import CLASS_NAMES, REPO, class_text_embeddings, read_scenes  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    shipped = REPO / "tests" / "data" / "pocket" / "detector"
    shipped_records = [json.loads(x) for x in (shipped / "scenes.jsonl").read_text().splitlines()] \
        if (shipped / "scenes.jsonl").exists() else []
    images = [Image.open(shipped / r["image"]).convert("RGB") for r in shipped_records]
    images += [Image.open(Path(data) / r["image"]).convert("RGB") for r in read_scenes(data, "test", test_scenes)]
    text = class_text_embeddings(list(CLASS_NAMES), clip)
    picture, _ = text_overlays(detector, images, list(CLASS_NAMES), text, threshold)
    picture.save(folder / "detector_text_overlays.png")
    written.append(folder / "detector_text_overlays.png")
    if has_modality(clip, "audio")[0] and (shipped / "dog.wav").exists():
        dog_scenes = [im for r, im in zip(shipped_records, images) if any(o["label"] == "dog" for o in r["objects"])]
        others = [im for r, im in zip(shipped_records, images) if all(o["label"] != "dog" for o in r["objects"])]
        sounds = {"dog": str(shipped / "dog.wav"), "cow": str(shipped / "cow.wav")}
        for best_only, name in ((False, "detector_audio_dog_demo.png"), (True, "detector_audio_dog_demo_best_box.png")):
            picture, _ = audio_demo(detector, sounds, dog_scenes + others, threshold, clip, best_only=best_only)
            picture.save(folder / name)
            written.append(folder / name)
    if report is not None:
        plot_per_class(report, folder / "detector_per_class_ap.png")
        written.append(folder / "detector_per_class_ap.png")
    return written
