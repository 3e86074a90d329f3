"""Composited scenes with exact boxes, masks and depth, for detection and depth training.

Pinhole camera at height CAMERA_HEIGHT over a flat ground, looking level: a ground point at
distance z images at row y = horizon + f * h / z, so the ground's depth is z = f * h / (y - horizon)
(capped at FAR; rows above the horizon are FAR). Each object is a flat billboard standing on
the ground at its distance z: its foot sits on that row and its pixel height is f * H / z for a
real height H (OBJECT_HEIGHT_M). Objects are pasted far to near, so nearer ones occlude; every
pasted pixel (alpha > 0.5) takes its object's depth. Disparity is f * B / z (pixels) for a stereo
baseline B, stored as float32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

CAMERA_HEIGHT = 1.6  # m
BASELINE = 0.12  # m
FAR = 60.0  # m: sky and far ground
NEAR, FARTHEST_OBJECT = 2.5, 10.0  # m, object distances
ALPHA_SOLID = 128  # alpha > this counts as the object (mask, box, depth)

# rough real heights in metres; unlisted categories use 1.0
OBJECT_HEIGHT_M = {
    "dog": 0.6, "cow": 1.5, "pig": 0.9, "sheep": 1.0, "horse": 1.7, "chicken": 0.45,
    "duck": 0.4, "bird": 0.3, "insect": 0.25, "elephant": 3.0, "wolf": 0.8, "rain": 1.5,
    "water stream": 1.2, "water splash": 1.0, "fire": 1.2, "train": 4.0, "airplane": 3.0,
    "car": 1.5, "door": 2.0, "footsteps": 0.4, "hammer": 0.4, "saw": 0.5, "explosion": 2.5,
    "bell": 0.5, "piano": 1.3, "guitar": 1.0, "drums": 1.0, "brass": 0.6, "violin": 0.6,
    "woodwind": 0.7, "cat": 0.35, "frog": 0.2, "owl": 0.4, "rooster": 0.6, "applause": 1.0,
    "glass breaking": 0.4, "thunder": 3.0, "wind": 2.0, "helicopter": 3.5, "car horn": 1.5,
}


@dataclass(frozen=True)
class Camera:
    width: int = 256
    height: int = 256
    focal_px: float = 320.0  # ~44 degree field of view at 256 px
    height_m: float = CAMERA_HEIGHT
    baseline_m: float = BASELINE

    def disparity(self, depth_m: np.ndarray | float) -> np.ndarray | float:
        return self.focal_px * self.baseline_m / depth_m

    def ground_depth(self, horizon: float) -> np.ndarray:
        """Depth (m) of every pixel of the empty scene, shape (height, width)."""
        rows = np.arange(self.height, dtype=np.float64) + 0.5
        below = rows - horizon
        depth = np.where(below > 0, self.focal_px * self.height_m / np.maximum(below, 1e-6), FAR)
        depth = np.minimum(depth, FAR)
        return np.repeat(depth[:, None], self.width, axis=1).astype(np.float32)


@dataclass
class SceneItem:
    label: str
    image: Image.Image  # RGBA cut-out (normalised render)
    ref: str  # its path relative to the data dir


def random_background(backgrounds: list[Image.Image], camera: Camera, rng) -> tuple[Image.Image, int]:
    k = int(rng.integers(len(backgrounds)))
    bg = backgrounds[k]
    scale = max(camera.width / bg.width, camera.height / bg.height) * float(rng.uniform(1.0, 1.6))
    bg = bg.resize((max(camera.width, round(bg.width * scale)),
                    max(camera.height, round(bg.height * scale))), Image.BILINEAR)
    x = int(rng.integers(0, bg.width - camera.width + 1))
    y = int(rng.integers(0, bg.height - camera.height + 1))
    crop = bg.crop((x, y, x + camera.width, y + camera.height))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return crop, k


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def make_scene(items: list[SceneItem], backgrounds: list[Image.Image], camera: Camera, rng,
               max_objects: int = 4, max_overlap: float = 0.3):
    """-> (rgb Image, disparity float32 (H, W), instance mask uint8 (H, W), record dict).

    Instance k (1-based, the order of record["objects"], far to near) owns the pixels where
    mask == k; boxes are the whole pasted object (amodal), `visible_fraction` says how much of it
    nearer objects leave visible. Objects less than MIN_VISIBLE visible are not labelled.
    """
    rgb, bg_index = random_background(backgrounds, camera, rng)
    horizon = float(rng.uniform(0.3, 0.5) * camera.height)
    depth = camera.ground_depth(horizon)
    mask = np.zeros((camera.height, camera.width), np.uint8)
    n = int(rng.integers(1, max_objects + 1))
    # distances first, so we can paste far to near
    # nearest distance whose ground row is still in the frame, so every object stands on it
    nearest = max(NEAR, camera.focal_px * camera.height_m / (camera.height - 1 - horizon))
    dists = np.sort(rng.uniform(nearest, FARTHEST_OBJECT, size=n))[::-1]
    placed = []
    for z in dists:
        item = items[int(rng.integers(len(items)))]
        alpha = np.asarray(item.image)[:, :, 3]
        ys, xs = np.nonzero(alpha > ALPHA_SOLID)
        if len(xs) == 0:
            continue
        crop = item.image.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        h_px = camera.focal_px * OBJECT_HEIGHT_M.get(item.label, 1.0) / z
        h_px = float(np.clip(h_px, 16, 0.8 * camera.height))
        w_px = max(4, round(crop.width * h_px / crop.height))
        h_px = max(4, round(h_px))
        if w_px > camera.width:
            continue
        crop = crop.resize((w_px, h_px), Image.LANCZOS)
        foot = horizon + camera.focal_px * camera.height_m / z  # ground row at distance z
        y1 = int(round(foot))
        y0 = y1 - h_px
        if y0 < 0:
            continue
        for _ in range(10):
            x0 = int(rng.integers(0, camera.width - w_px + 1))
            box = (x0, y0, x0 + w_px, y1)
            if all(_iou(box, p["box"]) <= max_overlap for p in placed):
                break
        else:
            continue
        a = np.asarray(crop)[:, :, 3]
        solid = a > ALPHA_SOLID
        if not solid.any():
            continue
        sy, sx = np.nonzero(solid)
        box = [x0 + int(sx.min()), y0 + int(sy.min()), x0 + int(sx.max()) + 1, y0 + int(sy.max()) + 1]
        rgb.paste(crop.convert("RGB"), (x0, y0), crop)
        region = (slice(y0, y0 + h_px), slice(x0, x0 + w_px))
        depth[region][solid] = z
        instance = len(placed) + 1
        mask[region][solid] = instance
        placed.append({"label": item.label, "box": box, "distance_m": round(float(z), 4),
                       "instance": instance, "source_image": item.ref, "_area": int(solid.sum())})
    placed, hidden, mask = _drop_hidden(placed, mask)
    disparity = camera.disparity(depth).astype(np.float32)
    record = {"width": camera.width, "height": camera.height, "focal_px": camera.focal_px,
              "baseline_m": camera.baseline_m, "camera_height_m": camera.height_m,
              "horizon_y": round(horizon, 3), "far_m": FAR, "background": bg_index,
              "objects": placed, "hidden": hidden}
    return rgb, disparity, mask, record


MIN_VISIBLE = 0.1  # objects hidden behind nearer ones beyond this are not labelled


def _drop_hidden(placed: list[dict], mask: np.ndarray) -> tuple[list[dict], list[dict], np.ndarray]:
    """Record each object's visible fraction, move the (nearly) hidden ones out of the labels
    (their slivers keep their depth), renumber instances."""
    kept, hidden, new_mask = [], [], np.zeros_like(mask)
    for obj in placed:
        visible = mask == obj["instance"]
        fraction = float(visible.sum()) / obj.pop("_area")
        if fraction < MIN_VISIBLE:
            obj.pop("instance")
            hidden.append({**obj, "visible_fraction": round(fraction, 4)})
            continue
        obj["visible_fraction"] = round(fraction, 4)
        obj["instance"] = len(kept) + 1
        new_mask[visible] = obj["instance"]
        kept.append(obj)
    return kept, hidden, new_mask


def write_scenes(out_dir, split: str, count: int, items: list[SceneItem],
                 backgrounds: list[Image.Image], background_names: list[str], camera: Camera,
                 seed: int, progress=None) -> list[dict]:
    """Write `count` scenes under out_dir/scenes/<split>/ and their JSONL; returns the records."""
    from pathlib import Path  # noqa: PLC0415
    from .sources import write_text_atomic  # noqa: PLC0415
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2}[split]])
    folder = Path(out_dir) / "scenes" / split
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for k in range(count):
        rgb, disparity, mask, record = make_scene(items, backgrounds, camera, rng)
        stem = f"{k:06d}"
        rgb.save(folder / f"{stem}.png", optimize=False)
        np.save(folder / f"{stem}_disparity.npy", disparity)
        Image.fromarray(mask, "L").save(folder / f"{stem}_mask.png")
        record = {"image": f"scenes/{split}/{stem}.png",
                  "disparity": f"scenes/{split}/{stem}_disparity.npy",
                  "mask": f"scenes/{split}/{stem}_mask.png", **record,
                  "background": background_names[record["background"]]}
        records.append(record)
        if progress is not None:
            progress(1)
    write_text_atomic(Path(out_dir) / "manifests" / f"scenes_{split}.jsonl",
                      "".join(json.dumps(r) + "\n" for r in records))
    return records
