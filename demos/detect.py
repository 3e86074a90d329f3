"""Find what sounds like these sounds in images: draw the boxes, write PNG overlays and JSON.

    python -m demos.detect --audio dog.wav --audio drums.wav --image scene.png --out overlay.png
    python -m demos.detect --audio dog.wav --name "barking dog" --image photos/ --out overlays/

Each sound becomes one class of the detector (labelled with its file name or ``--name``); boxes
scoring above ``--threshold`` (default 0.9, the ImageBind paper's overlays) are drawn with their
label and score. Every overlay PNG gets a JSON beside it with the boxes (x0, y0, x1, y1 in the
image's pixels), scores and labels. With no model flags the embedded default (pocket) models run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import offline_environment
from .inputs import IMAGE_SUFFIXES, DemoInputError, Sound, check_image, check_sound
from .models import DemoModels, ModelsNotInstalled, add_model_arguments

DEFAULT_THRESHOLD = 0.9


def detect_sounds(models: DemoModels, sounds: Sequence[Any], images: Sequence[Any],
                  threshold: float = DEFAULT_THRESHOLD, names: Sequence[str] | None = None) -> list:
    """Prompt the detector with these sounds and run it on each image -> one ``Detections`` per image.

    sounds: paths or ``Sound``s (checked with ``check_sound``); images: paths or PIL images.
    names: one label per sound (default: the sound files' names). The detector's own classes are
    put back afterwards, also after errors.
    """
    import adapters.detic as detic

    checked = [s if isinstance(s, Sound) else check_sound(s) for s in sounds]
    if not checked:
        raise DemoInputError("No sound given: add at least one sound to look for.")
    labels = _labels(checked, names)
    if not 0.0 <= float(threshold) <= 1.0:
        raise DemoInputError(f"The threshold must be between 0 and 1, got {threshold}.")
    pictures = [check_image(im) for im in images]
    detector, encoder = models.detector(), models.encoder("audio")
    # The detector is shared: a prompt swaps its classes and must be restored before the next one is
    # (adapters restore prompts in reverse order only), so requests take turns here.
    with models.detection_lock:
        with detic.from_audio([s.path for s in checked], detector=detector, threshold=float(threshold),
                              names=labels, encoder=encoder, bridge=models.detector_bridge) as prompted:
            return [prompted.detect(picture) for picture in pictures]


def best_box(models: DemoModels, sounds: Sequence[Any], image: Any,
             names: Sequence[str] | None = None) -> tuple[str, float] | None:
    """(class name, score) of the highest-scoring box at any score: what "nothing above" missed."""
    found = detect_sounds(models, sounds, [image], 0.0, names)[0]
    if len(found) == 0:
        return None
    i = int(found.scores.argmax())
    return found.names[i], float(found.scores[i])


def _labels(sounds: Sequence[Sound], names: Sequence[str] | None) -> list[str]:
    if names is None or not [n for n in names if str(n).strip()]:
        return [s.name for s in sounds]
    names = [str(n).strip() for n in names]
    if len(names) != len(sounds) or not all(names):
        raise DemoInputError(f"Got {len(names)} names for {len(sounds)} sounds; give one name per sound "
                             f"(or none, to use the file names).")
    return names


def overlay_record(found, image: Any, threshold: float, sounds: Sequence[Sound],
                   overlay: Path | None = None) -> dict:
    """What the JSON beside an overlay holds: the detections plus where they came from."""
    record = {"image": str(image) if not hasattr(image, "convert") else "(in memory)",
              "overlay": None if overlay is None else str(overlay), "threshold": float(threshold),
              "sounds": [{"name": name, "file": str(s.path)} for name, s in zip(found.class_names, sounds)]}
    record.update(found.to_dict())
    return record


def write_overlay(found, picture, path: Path, record: dict) -> tuple[Path, Path]:
    """Draw ``found`` on ``picture`` into ``path`` (PNG) and write ``record`` to the same name .json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    found.draw(picture).save(path)
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    return path, json_path


def collect_images(items: Sequence[str]) -> list[Path]:
    """Image files, and the image files directly inside folders (sorted)."""
    out = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DemoInputError(f"The folder '{p}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DemoInputError(f"The image '{p}' does not exist.")
    return out


def overlay_paths(images: Sequence[Path], out: Path) -> list[Path]:
    """Where each image's overlay goes: ``out`` itself for one image and a .png ``out``; else
    ``out/<image name>.png`` (numbered when two images share a name)."""
    if out.suffix.lower() == ".png":
        if len(images) != 1:
            raise DemoInputError(f"--out {out} names one PNG but there are {len(images)} images; "
                                 f"pass a folder as --out")
        return [out]
    paths, seen = [], {}
    for image in images:
        stem = image.stem
        seen[stem] = seen.get(stem, 0) + 1
        paths.append(out / (f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png"))
    return paths


def summary_line(image: Path, found, threshold: float, overlay: Path,
                 best: tuple[str, float] | None = None) -> str:
    """One line per image; ``best`` (from ``best_box``) says what the best box scored when none passed."""
    if len(found) == 0:
        what = f"nothing above {threshold:g}"
        if best is not None:
            what += f" (best box: {best[0]} {best[1]:.2f}; lower --threshold to draw it)"
    else:
        shown = [f"{n} {s:.2f}" for n, s in zip(found.names[:5], found.scores.tolist()[:5])]
        what = f"{len(found)} box{'es' if len(found) != 1 else ''} above {threshold:g}: " + ", ".join(shown)
        what += ", ..." if len(found) > 5 else ""
    return f"{image.name}: {what} -> {overlay} (+ .json)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demos.detect",
        description="Detect what sounds like the given sounds in images; write overlay PNGs and JSON.")
    parser.add_argument("--audio", action="append", required=True, metavar="SOUND",
                        help="a sound file to look for (repeat for several)")
    parser.add_argument("--name", action="append", metavar="LABEL",
                        help="label of each --audio, in order (default: the file names)")
    parser.add_argument("--image", action="append", required=True, metavar="IMAGE_OR_FOLDER",
                        help="an image, or a folder of images (repeatable)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="keep boxes scoring above this (default 0.9, the paper's overlays)")
    parser.add_argument("--out", default="overlays", metavar="PNG_OR_FOLDER",
                        help="overlay.png for one image, else a folder (default: ./overlays/)")
    add_model_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, models: DemoModels | None = None) -> int:
    """The command line; ``models`` replaces the model flags (for notebooks and tests)."""
    offline_environment()
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        models = models or DemoModels.from_args(args)
        models.check_installed(("encoder", "detector"))
        sounds = [check_sound(a) for a in args.audio]
        images = collect_images(args.image)
        targets = overlay_paths(images, Path(args.out).expanduser())
        results = detect_sounds(models, sounds, images, args.threshold, args.name)
    except (DemoInputError, ModelsNotInstalled, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for image, found, target in zip(images, results, targets):
        picture = check_image(image)
        write_overlay(found, picture, target, overlay_record(found, image, args.threshold, sounds, target))
        best = best_box(models, sounds, picture, args.name) if len(found) == 0 else None
        print(summary_line(image, found, args.threshold, target, best))
    labels = ", ".join(results[0].class_names) if results else ""
    boxes = sum(len(r) for r in results)
    print(f"{len(images)} image{'s' if len(images) != 1 else ''}, sounds: {labels}; "
          f"{boxes} box{'es' if boxes != 1 else ''} above {args.threshold:g} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
