"""rebind's own Detic-style detector, on torchvision (no detectron2 needed).

Faster R-CNN (backbone + FPN, RPN, RoIAlign, two-FC box head) with Detic's zero-shot head:

    box feature -> Linear to the CLIP dim -> L2 norm -> x temperature (50)
                -> dot product with a fixed class-embedding matrix [D, C+1] (zero background column)
    class score  = sigmoid(logit)                      (Detic: sigmoid, not softmax)
    final score  = sqrt(class score x RPN objectness)  (Detic's MULT_PROPOSAL_SCORE)
    one class per box, score > threshold, NMS 0.5, at most 300 per image.

Box regression is class-agnostic, so any vocabulary works without retraining. The class matrix is
a NON-persistent buffer: it is the vocabulary (an input), not a learned weight; it moves with
``.to()``, stays out of ``state_dict()`` (which therefore never changes shape with the vocabulary),
and ``save_detector`` stores it separately so a saved detector keeps its default classes.

Training (torchvision style)::

    model = DeticStyleDetector(DeticStyleConfig(space="pocket"))
    model.set_class_embeddings(text_embeddings, names)   # [C, D] CLIP text embeddings of the classes
    model.train()
    losses = model(images, targets)     # images: list of [3, H, W] float in [0, 1]
    sum(losses.values()).backward()     # targets: [{"boxes": [K, 4] float xyxy pixels,
                                        #            "labels": [K] int64 in [0, C)}]

Losses: ``loss_objectness``, ``loss_rpn_box_reg`` (torchvision RPN), ``loss_classifier`` (Detic's
sigmoid BCE over the C classes, summed over classes, averaged over sampled boxes), ``loss_box_reg``
(smooth L1, class-agnostic). In eval mode ``model(images)`` returns torchvision-style dicts with
``boxes`` (input pixels), ``scores`` and ``labels`` (0-based indices into the classes).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, boxes as box_ops

from encoders.config import ConfigError, from_dict
from encoders.inputs import InputError
from encoders.spaces import ClipSpace, get_space

from .base import PromptableDetector
from .detections import select_detections

FORMAT = "rebind-detic-style-detector"
FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, CLASSES_FILE = "config.json", "model.safetensors", "classes.safetensors"

Backbone = Literal["resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large"]


@dataclass
class DeticStyleConfig:
    """Everything needed to rebuild the detector; saved as config.json beside the weights.

    space: the CLIP space of the class embeddings (its ``dim`` sizes the projection).
    backbone / norm: built with random weights (no pretrained weights exist offline);
        ``norm="group"`` trains better than BatchNorm with small batches.
    min_size / max_size: images are resized so the short side is ``min_size`` (a list: one picked
        at random per training batch) and the long side at most ``max_size``.
    anchor_sizes: one size per feature level (None: 4 x the level's stride).
    The remaining fields follow Detic's defaults where Detic has one.
    """

    space: str = "pocket"
    backbone: Backbone = "resnet18"
    norm: Literal["batch", "group"] = "batch"
    fpn_channels: int = 128
    representation_size: int = 256  # box head: two FC layers of this width
    roi_output_size: int = 7
    min_size: list[int] = field(default_factory=lambda: [256])
    max_size: int = 384
    image_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    anchor_sizes: Optional[list[int]] = None
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 1000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 256  # Detic/CenterNet2 POST_NMS_TOPK_TEST
    rpn_nms_threshold: float = 0.7
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512  # Detic BATCH_SIZE_PER_IMAGE
    box_positive_fraction: float = 0.25
    box_fg_iou_threshold: float = 0.5
    box_bg_iou_threshold: float = 0.5
    norm_temperature: float = 50.0  # Detic NORM_TEMP
    class_bias_init: Optional[float] = -4.6  # learned logit bias, log(0.01/0.99); None: no bias (Detic default)
    score_threshold: float = 0.02  # Detic SCORE_THRESH_TEST, for model(images); detect() takes its own
    nms_threshold: float = 0.5
    detections_per_image: int = 300
    one_class_per_proposal: bool = True
    mult_proposal_score: bool = True

    def validate(self, where: str) -> None:
        try:
            space = get_space(self.space)
        except KeyError as e:
            raise ConfigError(f"{where}.space: {e.args[0]}") from None
        if space.dim <= 0:
            raise ConfigError(f"{where}.space: {space} has no dimension")
        for name in ("fpn_channels", "representation_size", "roi_output_size", "max_size", "detections_per_image",
                     "rpn_batch_size_per_image", "box_batch_size_per_image"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}.{name} must be positive, got {getattr(self, name)}")
        if not self.min_size or min(self.min_size) <= 0:
            raise ConfigError(f"{where}.min_size must be a non-empty list of positive sizes, got {self.min_size}")
        for name in ("score_threshold", "nms_threshold", "rpn_nms_threshold", "box_positive_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{where}.{name} must be in [0, 1], got {getattr(self, name)}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ConfigError(f"{where}.image_mean/image_std need 3 values (RGB), std > 0")

    @classmethod
    def from_dict(cls, data: dict, where: str = "detector config") -> "DeticStyleConfig":
        return from_dict(cls, data, where)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------ backbone

def _norm_layer(kind: str):
    if kind == "batch":
        return nn.BatchNorm2d
    return lambda channels: nn.GroupNorm(math.gcd(32, channels), channels)


def build_backbone(config: DeticStyleConfig) -> tuple[nn.Module, list[int]]:
    """Random-init backbone + FPN (+ max-pool level). Returns (module, stride of each output level)."""
    import torchvision.models as tvm
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    norm = _norm_layer(config.norm)
    if config.backbone.startswith("resnet"):
        body = getattr(tvm, config.backbone)(weights=None, norm_layer=norm)
        channels = [body.inplanes // 8, body.inplanes // 4, body.inplanes // 2, body.inplanes]
        return_layers = {f"layer{i + 1}": str(i) for i in range(4)}
        strides = [4, 8, 16, 32, 64]
    else:
        mobilenet_norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01) if config.norm == "batch" else norm
        body = getattr(tvm, config.backbone)(weights=None, norm_layer=mobilenet_norm).features
        # the last block at each of the strides 8, 16, 32 (found by running a tiny image through)
        last_at: dict[int, tuple[int, int]] = {}
        x = torch.zeros(1, 3, 64, 64)
        body.eval()
        with torch.no_grad():
            for i, block in enumerate(body):
                x = block(x)
                last_at[64 // x.shape[-1]] = (i, x.shape[1])
        body.train()
        picked = [last_at[s] for s in (8, 16, 32)]
        return_layers = {str(i): str(k) for k, (i, _) in enumerate(picked)}
        channels = [c for _, c in picked]
        strides = [8, 16, 32, 64]
    fpn = BackboneWithFPN(body, return_layers, channels, config.fpn_channels, extra_blocks=LastLevelMaxPool(),
                          norm_layer=None)
    return fpn, strides


# ----------------------------------------------------------------------------------------- RPN

class ObjectnessRPN(RegionProposalNetwork):
    """torchvision's RPN, but it hands its proposals' objectness (sigmoid) on to the box head,
    which Detic needs for sqrt(class x objectness); torchvision's drops them."""

    def forward(self, images, features, targets=None):
        features = list(features.values())
        objectness, pred_bbox_deltas = self.head(features)
        anchors = self.anchor_generator(images, features)
        num_images = len(anchors)
        num_anchors_per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in objectness]
        objectness, pred_bbox_deltas = concat_box_prediction_layers(objectness, pred_bbox_deltas)
        proposals = self.box_coder.decode(pred_bbox_deltas.detach(), anchors).view(num_images, -1, 4)
        boxes, scores = self.filter_proposals(proposals, objectness, images.image_sizes, num_anchors_per_level)
        losses = {}
        if self.training:
            labels, matched_gt_boxes = self.assign_targets_to_anchors(anchors, targets)
            regression_targets = self.box_coder.encode(matched_gt_boxes, anchors)
            loss_objectness, loss_rpn_box_reg = self.compute_loss(objectness, pred_bbox_deltas, labels,
                                                                  regression_targets)
            losses = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}
        return boxes, scores, losses


# ------------------------------------------------------------------------------------ box head

class ZeroShotClassifier(nn.Module):
    """Detic's ZeroShotClassifier: logits = temperature * normalize(Linear(x)) @ class_embeddings.

    ``class_embeddings`` is [D, C+1]: unit class embeddings as columns plus a zero background column.
    It is a registered, non-persistent buffer; the detector swaps it, never writes into it.
    """

    def __init__(self, in_features: int, embed_dim: int, temperature: float = 50.0,
                 bias_init: float | None = None):
        super().__init__()
        self.linear = nn.Linear(in_features, embed_dim)
        self.temperature = temperature
        self.register_buffer("class_embeddings", torch.zeros(embed_dim, 1), persistent=False)
        self.bias = None if bias_init is None else nn.Parameter(torch.tensor(float(bias_init)))

    @property
    def num_classes(self) -> int:
        return self.class_embeddings.shape[1] - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.temperature * F.normalize(self.linear(x), p=2, dim=1)
        logits = x @ self.class_embeddings.to(x.dtype)
        return logits if self.bias is None else logits + self.bias


class ZeroShotBoxPredictor(nn.Module):
    """Class logits [N, C+1] from the zero-shot classifier and class-agnostic box deltas [N, 4]
    from Detic's two-layer MLP."""

    def __init__(self, in_features: int, embed_dim: int, temperature: float, bias_init: float | None):
        super().__init__()
        self.cls_score = ZeroShotClassifier(in_features, embed_dim, temperature, bias_init)
        self.bbox_pred = nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU(inplace=True),
                                       nn.Linear(in_features, 4))
        nn.init.normal_(self.bbox_pred[-1].weight, std=0.001)
        nn.init.constant_(self.bbox_pred[-1].bias, 0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


class ZeroShotRoIHeads(RoIHeads):
    """torchvision RoIHeads with Detic's scoring and losses.

    Internally labels follow torchvision (0 = background, classes 1..C, assigned by
    ``select_training_samples``); column c of the logits is class c+1, the last column background.
    """

    def __init__(self, *args, one_class_per_proposal: bool = True, mult_proposal_score: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.one_class_per_proposal = one_class_per_proposal
        self.mult_proposal_score = mult_proposal_score

    def forward(self, features, proposals, proposal_scores, image_shapes, targets=None, score_threshold=None):
        if self.training:
            proposals, _, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        if self.training:
            return [], self.detic_losses(class_logits, box_regression, labels, regression_targets)
        return self.postprocess(class_logits, box_regression, proposals, proposal_scores, image_shapes,
                                self.score_thresh if score_threshold is None else score_threshold), {}

    @staticmethod
    def detic_losses(class_logits, box_regression, labels, regression_targets) -> dict[str, torch.Tensor]:
        labels = torch.cat(labels, dim=0)
        regression_targets = torch.cat(regression_targets, dim=0)
        num_boxes, num_classes = class_logits.shape[0], class_logits.shape[1] - 1
        target = torch.zeros(num_boxes, num_classes + 1, device=class_logits.device, dtype=class_logits.dtype)
        target[torch.arange(num_boxes, device=labels.device), (labels - 1).clamp(min=0)] = (labels > 0).to(target.dtype)
        # Detic: BCE on the C class columns (background column dropped), summed, / number of boxes
        loss_classifier = F.binary_cross_entropy_with_logits(
            class_logits[:, :-1], target[:, :-1], reduction="sum") / max(num_boxes, 1)
        positive = torch.where(labels > 0)[0]
        loss_box_reg = F.smooth_l1_loss(box_regression[positive], regression_targets[positive], beta=1 / 9,
                                        reduction="sum") / max(labels.numel(), 1)
        return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

    def final_scores(self, class_logits: torch.Tensor, proposal_scores: torch.Tensor) -> torch.Tensor:
        """[N, C+1] logits, [N] objectness -> [N, C] scores: sqrt(sigmoid(logit) x objectness)."""
        scores = class_logits[:, :-1].sigmoid()
        if self.mult_proposal_score:
            scores = (scores * proposal_scores[:, None]).sqrt()
        return scores

    def postprocess(self, class_logits, box_regression, proposals, proposal_scores, image_shapes, score_threshold):
        per_image = [len(p) for p in proposals]
        boxes = self.box_coder.decode(box_regression, proposals)[:, 0]  # class-agnostic: [N, 4]
        scores = self.final_scores(class_logits, torch.cat(proposal_scores))
        results = []
        for b, s, shape in zip(boxes.split(per_image), scores.split(per_image), image_shapes):
            b = box_ops.clip_boxes_to_image(b, shape)
            b, s, labels = select_detections(b, s, score_threshold, self.nms_thresh, self.detections_per_img,
                                             self.one_class_per_proposal)
            results.append({"boxes": b, "scores": s, "labels": labels})
        return results


# ------------------------------------------------------------------------------------ detector

class DeticStyleDetector(nn.Module, PromptableDetector):
    """Faster R-CNN with Detic's zero-shot classifier; see the module docstring."""

    has_masks = False

    def __init__(self, config: DeticStyleConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = DeticStyleConfig()
        elif isinstance(config, dict):
            config = DeticStyleConfig.from_dict(config)
        else:
            config.validate("detector config")
        self.config = config
        self.space: ClipSpace = get_space(config.space)
        self.class_names: list[str] = []
        self.transform = GeneralizedRCNNTransform(tuple(config.min_size), config.max_size, list(config.image_mean),
                                                  list(config.image_std))
        self.backbone, strides = build_backbone(config)
        sizes = config.anchor_sizes or [4 * s for s in strides]
        if len(sizes) != len(strides):
            raise ConfigError(f"detector config.anchor_sizes: {config.backbone} gives {len(strides)} feature "
                              f"levels (strides {strides}), got {len(sizes)} anchor sizes")
        anchors = AnchorGenerator(tuple((s,) for s in sizes), (tuple(config.aspect_ratios),) * len(sizes))
        self.rpn = ObjectnessRPN(
            anchors, RPNHead(config.fpn_channels, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=config.rpn_batch_size_per_image,
            positive_fraction=0.5,
            pre_nms_top_n={"training": config.rpn_pre_nms_top_n_train, "testing": config.rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": config.rpn_post_nms_top_n_train, "testing": config.rpn_post_nms_top_n_test},
            nms_thresh=config.rpn_nms_threshold)
        levels = [str(i) for i in range(len(strides) - 1)]  # the max-pool level only feeds the RPN
        box_head = TwoMLPHead(config.fpn_channels * config.roi_output_size ** 2, config.representation_size)
        self.roi_heads = ZeroShotRoIHeads(
            MultiScaleRoIAlign(levels, config.roi_output_size, sampling_ratio=2), box_head,
            ZeroShotBoxPredictor(config.representation_size, self.space.dim, config.norm_temperature,
                                 config.class_bias_init),
            fg_iou_thresh=config.box_fg_iou_threshold, bg_iou_thresh=config.box_bg_iou_threshold,
            batch_size_per_image=config.box_batch_size_per_image, positive_fraction=config.box_positive_fraction,
            bbox_reg_weights=None, score_thresh=config.score_threshold, nms_thresh=config.nms_threshold,
            detections_per_img=config.detections_per_image,
            one_class_per_proposal=config.one_class_per_proposal, mult_proposal_score=config.mult_proposal_score)

    @property
    def classifier(self) -> ZeroShotClassifier:
        return self.roi_heads.box_predictor.cls_score

    # ------------------------------------------------------------------- class-embedding swap
    def get_class_embeddings(self) -> torch.Tensor:
        return self.classifier.class_embeddings[:, :-1].T.detach().float().cpu().clone()

    def _classifier_state(self):
        return self.classifier.class_embeddings, list(self.class_names)

    def _restore_classifier_state(self, state) -> None:
        matrix, names = state
        current = self.classifier.class_embeddings
        # the buffer object itself goes back (moved along if the model was moved meanwhile)
        self.classifier.class_embeddings = matrix.to(current.device) if matrix.device != current.device else matrix
        self.class_names = names

    def _classifier_token(self) -> tuple:
        return (self.classifier.class_embeddings,)

    def _install_class_embeddings(self, vectors: torch.Tensor, names: list[str]) -> None:
        current = self.classifier.class_embeddings
        matrix = torch.cat([F.normalize(vectors.float(), dim=-1).T, vectors.new_zeros(vectors.shape[1], 1)], dim=1)
        # assigning to a registered buffer name replaces the buffer; the old tensor is untouched
        self.classifier.class_embeddings = matrix.to(current.device, current.dtype)
        self.class_names = list(names)

    # ---------------------------------------------------------------------------- forward
    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None):
        """Train mode: losses dict (needs ``targets``). Eval mode: one dict per image with
        ``boxes`` [K, 4] xyxy input pixels, ``scores`` [K], ``labels`` [K] (0-based classes)."""
        return self._run(images, targets)

    def _run(self, images, targets=None, score_threshold: float | None = None):
        if self.classifier.num_classes == 0:
            raise RuntimeError("the detector has no classes: call set_class_embeddings(embeddings, names) "
                               "(training) or prompt it (adapters.detic.from_audio / from_text / ...)")
        if self.training:
            targets = self._internal_targets(images, targets)
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        image_list, targets = self.transform(images, targets)
        features = self.backbone(image_list.tensors)
        proposals, proposal_scores, rpn_losses = self.rpn(image_list, features, targets)
        detections, roi_losses = self.roi_heads(features, proposals, proposal_scores, image_list.image_sizes,
                                                targets, score_threshold)
        if self.training:
            return {**rpn_losses, **roi_losses}
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)

    def _internal_targets(self, images, targets):
        if targets is None:
            raise ValueError("training needs targets: [{'boxes': [K, 4] float xyxy pixels, "
                             "'labels': [K] int64 class indices}] (one dict per image)")
        if len(targets) != len(images):
            raise ValueError(f"got {len(targets)} targets for {len(images)} images")
        num_classes = self.classifier.num_classes
        out = []
        for i, t in enumerate(targets):
            boxes, labels = t["boxes"], t["labels"]
            if not boxes.is_floating_point() or boxes.ndim != 2 or boxes.shape[-1] != 4:
                raise ValueError(f"targets[{i}]['boxes'] must be a float [K, 4] xyxy tensor, got "
                                 f"{boxes.dtype} {tuple(boxes.shape)}")
            if labels.dtype != torch.int64 or labels.shape != boxes.shape[:1]:
                raise ValueError(f"targets[{i}]['labels'] must be int64 [K] matching the boxes, got "
                                 f"{labels.dtype} {tuple(labels.shape)}")
            if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
                raise ValueError(f"targets[{i}]['labels'] must be in [0, {num_classes}) (the classes set with "
                                 f"set_class_embeddings), got {labels.min().item()}..{labels.max().item()}")
            out.append({"boxes": boxes, "labels": labels + 1})  # torchvision's background is 0
        return out

    def _detect_images(self, images: list, threshold: float) -> list[dict]:
        from torchvision.transforms.functional import pil_to_tensor

        device = self.classifier.class_embeddings.device
        dtype = self.classifier.linear.weight.dtype
        tensors = [pil_to_tensor(img).to(device, dtype) / 255.0 for img in images]
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self._run(tensors, score_threshold=threshold)
        finally:
            self.train(was_training)


# ------------------------------------------------------------------------------- save / load

def save_detector(model: DeticStyleDetector, folder: "str | os.PathLike") -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``classes.safetensors`` with the class
    matrix and names now installed) to ``folder``."""
    from safetensors.torch import save_file

    if not isinstance(model, DeticStyleDetector):
        raise TypeError(f"save_detector saves rebind's DeticStyleDetector, got {type(model).__name__}; "
                        f"save detectron2 / transformers models the way those libraries do")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
    if model.num_classes:
        save_file({"class_embeddings": model.get_class_embeddings().contiguous()}, str(folder / CLASSES_FILE),
                  metadata={"names": json.dumps(model.class_names), "space": model.space.name})
    elif (folder / CLASSES_FILE).exists():
        (folder / CLASSES_FILE).unlink()
    (folder / CONFIG_FILE).write_text(json.dumps(
        {"format": FORMAT, "version": FORMAT_VERSION, "config": model.config.to_dict()}, indent=2) + "\n")
    return folder


def load_saved_detector(folder: "str | os.PathLike", device: "str | torch.device | None" = None) -> DeticStyleDetector:
    """The detector ``save_detector`` wrote, in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    config_path = folder / CONFIG_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"'{folder}' has no {CONFIG_FILE}; it is not a saved rebind detector "
                                f"(write one with adapters.detic.save_detector(model, folder))")
    meta = json.loads(config_path.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(f"'{config_path}' is not a rebind detector config (format {meta.get('format')!r})")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ConfigError(f"'{config_path}' was written by a newer rebind (version {meta['version']}); upgrade")
    model = DeticStyleDetector(DeticStyleConfig.from_dict(meta["config"], f"'{config_path}'.config"))
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise FileNotFoundError(f"'{folder}' has a config but no {WEIGHTS_FILE}")
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:
        raise InputError(f"'{weights}' does not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    classes = folder / CLASSES_FILE
    if classes.exists():
        with safe_open(str(classes), framework="pt") as f:
            names = json.loads((f.metadata() or {}).get("names", "[]"))
            model.set_class_embeddings(f.get_tensor("class_embeddings"), names or None)
    model.eval()
    return model.to(device) if device is not None else model
