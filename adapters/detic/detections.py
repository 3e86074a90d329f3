"""Detection results, the image reader every backend shares, and Detic's box selection."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from encoders.inputs import InputError, describe

MIN_IMAGE_SIDE = 2  # a 1-pixel side cannot hold a box; anything smaller is almost surely a bug upstream


@dataclass
class Detections:
    """What a detector found in one image.

    boxes: [K, 4] float, xyxy in the pixels of the image that was passed in.
    scores: [K] float in [0, 1], highest first.
    labels: [K] int64, indices into ``class_names``.
    class_names: the detector's classes when it ran (e.g. the sound files' names).
    masks: [K, H, W] bool in input-image pixels, or None when the backend has no mask head.
    image_size: (width, height) of the input image.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    image_size: tuple[int, int]
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def names(self) -> list[str]:
        """The class name of each detection."""
        return [self.class_names[i] for i in self.labels.tolist()]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (no masks: they are [K, H, W] images, keep them as tensors)."""
        return {
            "image_size": list(self.image_size),
            "classes": list(self.class_names),
            "detections": [
                {"box": [round(v, 2) for v in box], "score": round(score, 4), "label": label,
                 "name": self.class_names[label]}
                for box, score, label in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist())
            ],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def draw(self, image: Any, line_width: int | None = None, show_scores: bool = True,
             mask_alpha: float = 0.4):
        """The image (path / PIL / array) with boxes, class names and scores drawn: a new RGB PIL image."""
        from PIL import Image, ImageDraw, ImageFont

        img = read_image(image)
        if img.size != tuple(self.image_size):
            raise InputError(f"these detections were made on a {self.image_size[0]}x{self.image_size[1]} "
                             f"image but draw() got {img.size[0]}x{img.size[1]}; pass the same image")
        width = line_width or max(1, round(min(img.size) / 200))
        if self.masks is not None and len(self):
            overlay = np.asarray(img).astype(np.float32)
            for mask, label in zip(self.masks.cpu().numpy(), self.labels.tolist()):
                overlay[mask] = (1 - mask_alpha) * overlay[mask] + mask_alpha * np.array(color_of(label))
            img = Image.fromarray(overlay.round().clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=max(10, round(min(img.size) / 40)))
        # lowest score first, so the best boxes end up on top
        for box, score, label in reversed(list(zip(self.boxes.tolist(), self.scores.tolist(),
                                                   self.labels.tolist()))):
            color = color_of(label)
            draw.rectangle(box, outline=color, width=width)
            text = f"{self.class_names[label]} {score:.2f}" if show_scores else self.class_names[label]
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            x, y = box[0], max(0.0, box[1] - (bottom - top) - 2 * width)
            draw.rectangle([x, y, x + right - left + 2 * width, y + bottom - top + 2 * width], fill=color)
            draw.text((x + width - left, y + width - top), text, fill=(255, 255, 255), font=font)
        return img


_PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128)]


def color_of(label: int) -> tuple[int, int, int]:
    return _PALETTE[label % len(_PALETTE)]


def read_image(item: Any):
    """Path / PIL image / array / tensor -> RGB PIL image.

    Grayscale is expanded to RGB, RGBA and palette transparency are composited on white, float arrays
    are read as [0, 1]. Images with a side under ``MIN_IMAGE_SIDE`` pixels are refused.
    """
    from PIL import Image

    from encoders.preprocess import load_image

    name = describe(item)
    if isinstance(item, (np.ndarray, torch.Tensor)):
        if item.ndim not in (2, 3):
            raise InputError(f"image {name} has {item.ndim} dimensions; expected [H, W], [H, W, C] or "
                             f"[C, H, W] (one image at a time, or a list of images)")
        if 0 in tuple(item.shape):
            raise InputError(f"image {name} is empty (a side of 0 pixels); pass a real image")
    if isinstance(item, Image.Image) and 0 in item.size:
        raise InputError(f"image {name} has size {item.width}x{item.height}; pass a real image")
    img = load_image(item)
    if min(img.size) < MIN_IMAGE_SIDE:
        raise InputError(f"image {name} is {img.width}x{img.height} pixels; detection needs at least "
                         f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
    return img


def as_image_list(images: Any) -> tuple[list[Any], bool]:
    """One image or a list of images -> (list, whether a single image was given)."""
    if isinstance(images, (str, os.PathLike, np.ndarray, torch.Tensor)) or hasattr(images, "convert"):
        return [images], True
    if isinstance(images, Sequence) and not isinstance(images, (bytes, bytearray)):
        if not images:
            raise InputError("got an empty list of images; pass at least one")
        return list(images), False
    raise InputError(f"cannot read an image from {describe(images)}; expected a path, PIL image, "
                     f"array or tensor (or a list of them)")


def check_threshold(threshold: Any, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must be a score in [0, 1] (detections scoring strictly above it are "
                         f"kept; 0.9 is the paper's overlay setting), got {threshold!r}")
    return float(threshold)


def select_detections(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float,
                      nms_threshold: float = 0.5, max_detections: int = 300,
                      one_class_per_box: bool = True, min_box_size: float = 1e-2
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detic's final selection for one image.

    boxes: [N, 4] xyxy (class-agnostic); scores: [N, C] final per-class scores.
    One class per box (its best, as Detic's demo), keep scores strictly above the threshold, drop
    degenerate boxes, per-class NMS, then the ``max_detections`` best. Returns (boxes, scores, labels).
    """
    from torchvision.ops import batched_nms, remove_small_boxes

    if scores.shape[1] == 0 or len(boxes) == 0:
        return boxes.new_zeros(0, 4), scores.new_zeros(0), torch.zeros(0, dtype=torch.long, device=boxes.device)
    if one_class_per_box:
        best, labels = scores.max(dim=1)
        candidates = torch.nonzero(best > score_threshold).flatten()
        boxes, scores, labels = boxes[candidates], best[candidates], labels[candidates]
    else:
        rows, labels = torch.nonzero(scores > score_threshold, as_tuple=True)
        boxes, scores = boxes[rows], scores[rows, labels]
    keep = remove_small_boxes(boxes, min_box_size)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_threshold)[:max_detections]
    return boxes[keep], scores[keep], labels[keep]
