"""Small real data for the pretrain tests: sounds and pictures of four categories, written to disk,
and a tiny open_clip CLIP trained for a few seconds so its text tower names the pictures.

Each category has its own sound (bark-like bursts, broadband noise, a decaying bell, a low buzz)
and its own picture (shape + colour); files vary in length, sample rate, format, position, size.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

CLASSES = ["dog", "rain", "bell", "engine"]

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}

# a 2-layer, 32-wide audio ViT on 64 mel bins x 1 s clips (about 40k parameters)
TINY_AUDIO_VIT = {
    "space": "test-32",
    "description": "tiny audio ViT for pretrain tests",
    "modalities": {"audio": {
        "arch": "vit", "width": 32, "layers": 2, "heads": 4, "drop_path": 0.0, "bias_kv": True,
        "stem": {"kind": "patch2d", "in_channels": 1, "kernel": 16, "stride": 10, "input_size": [64, 100]},
        "preprocess": {"kind": "audio_fbank", "mel_bins": 64, "clip_seconds": 1.0, "target_frames": 100},
    }},
}

# the pocket-style ConvNet student at test size
TINY_AUDIO_CONVNET = {
    "space": "test-32",
    "modalities": {"audio": {
        "arch": "convnet", "channels": [8, 16, 32], "strides": [1, 2, 2], "fc": [32],
        "preprocess": {"kind": "audio_fbank", "mel_bins": 64, "clip_seconds": 1.0, "target_frames": 100},
    }},
}


def _sound(label: str, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    if label == "dog":  # bursts of a harmonic tone
        f0 = rng.uniform(350, 550)
        x = np.zeros_like(t)
        for start in np.arange(rng.uniform(0, 0.2), seconds - 0.15, rng.uniform(0.3, 0.5)):
            m = (t >= start) & (t < start + 0.15)
            tt = t[m] - start
            x[m] += sum(np.sin(2 * np.pi * f0 * k * tt) / k for k in range(1, 5)) * np.exp(-tt * 20)
    elif label == "rain":  # broadband noise, high-passed
        x = rng.standard_normal(len(t))
        x = x - np.convolve(x, np.ones(8) / 8, mode="same")
    elif label == "bell":  # inharmonic decaying partials
        f0 = rng.uniform(900, 1400)
        x = sum(np.sin(2 * np.pi * f0 * r * t) * a for r, a in ((1, 1), (2.76, 0.6), (5.4, 0.3)))
        x = x * np.exp(-t * rng.uniform(1.0, 2.0))
    else:  # engine: low sawtooth buzz
        f0 = rng.uniform(45, 80)
        x = 2 * ((t * f0) % 1.0) - 1
        x = x * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.8)
    return (x + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def write_sounds(folder: Path, per_class: int = 6, seed: int = 0) -> list[tuple[str, str]]:
    """-> [(relative file name, label)]; mixed rates, lengths and formats."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    formats = [("wav", 16000, "PCM_16"), ("flac", 22050, "PCM_16"), ("ogg", 44100, "VORBIS")]
    out = []
    for c, label in enumerate(CLASSES):
        for i in range(per_class):
            ext, rate, subtype = formats[(c + i) % len(formats)]
            name = f"{label}_{i}.{ext}"
            sf.write(folder / name, _sound(label, rng.uniform(1.2, 2.8), rate, rng), rate, subtype=subtype)
            out.append((name, label))
    return out


def _picture(label: str, rng: np.random.Generator):
    from PIL import Image, ImageDraw

    size = 48
    bg = tuple(int(v) for v in rng.integers(200, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = int(rng.integers(12, 20))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    jitter = lambda c: tuple(int(np.clip(v + rng.integers(-25, 26), 0, 255)) for v in c)  # noqa: E731
    if label == "dog":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=jitter((140, 80, 30)))
    elif label == "rain":
        for x in range(2, size, 6):
            d.line([x, 0, x - 3, size], fill=jitter((30, 60, 220)), width=2)
    elif label == "bell":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=jitter((230, 200, 20)))
    else:
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=jitter((90, 90, 90)))
    return img


def write_images(folder: Path, per_class: int = 4, seed: int = 1) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for label in CLASSES:
        for i in range(per_class):
            name = f"{label}_{i}.png"
            _picture(label, rng).save(folder / name)
            out.append((name, label))
    return out


def write_csv(path: Path, header: list[str], rows: list) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def train_tiny_clip(image_dir: Path, images: list[tuple[str, str]], out: Path, steps: int = 60,
                    seed: int = 0, config: dict | None = None) -> Path:
    """A tiny open_clip CLIP whose image and text towers agree on CLASSES; saved as a local-dir folder."""
    import open_clip
    from PIL import Image

    config = config or TINY_CLIP
    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{out}")
    tok = open_clip.get_tokenizer(f"local-dir:{out}")
    _, _, val = open_clip.create_model_and_transforms(f"local-dir:{out}")
    from torchvision import transforms as T

    aug = T.Compose([T.RandomResizedCrop(32, scale=(0.5, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                     T.Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)])
    pics = [Image.open(image_dir / n).convert("RGB") for n, _ in images]
    labels = torch.tensor([CLASSES.index(lab) for _, lab in images])
    templates = ["a photo of a {}.", "a picture of the {}.", "{}", "the {}."]  # no "sound" prompts
    texts = [t.format(c) for c in CLASSES for t in templates]
    text_labels = torch.tensor([i for i in range(len(CLASSES)) for _ in templates])
    tokens = tok(texts)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        x = torch.stack([aug(p) for p in pics])
        zi = F.normalize(model.encode_image(x), dim=-1)
        zt = F.normalize(model.encode_text(tokens), dim=-1)
        logits = zi @ zt.T / 0.07
        pos = (labels[:, None] == text_labels[None, :]).float()
        loss = -(F.log_softmax(logits, 1) * pos).sum(1).div(pos.sum(1)).mean() \
            - (F.log_softmax(logits, 0) * pos).sum(0).div(pos.sum(0)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.save(model.state_dict(), out / "open_clip_pytorch_model.bin")
    return out


def tiny_world(base: Path) -> dict:
    """Sounds, pictures, manifests and two tiny CLIPs under ``base`` (built once per folder).

    Returns paths: audio/, images/, train.csv (audio,label), pairs.csv (audio,image,label),
    images.csv (image,label), esc.csv (ESC-50 layout), clip_a/ and clip_b/ (local-dir teachers,
    32-d and 24-d, trained on the pictures with different seeds).
    """
    base = Path(base)
    ready = base / "READY"
    w = {"base": base, "audio": base / "audio", "images": base / "images", "train": base / "train.csv",
         "pairs": base / "pairs.csv", "image_manifest": base / "images.csv", "esc": base / "esc.csv",
         "clip_a": base / "clip_a", "clip_b": base / "clip_b"}
    if ready.exists():
        return w
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sounds = write_sounds(w["audio"])
        pics = write_images(w["images"])
        write_csv(w["train"], ["audio", "label"], [(f"audio/{n}", lab) for n, lab in sounds])
        write_csv(w["image_manifest"], ["image", "label"], [(f"images/{n}", lab) for n, lab in pics])
        by_label = {c: [n for n, lab in pics if lab == c] for c in CLASSES}
        write_csv(w["pairs"], ["audio", "image", "label"],
                  [(f"audio/{n}", f"images/{by_label[lab][i % len(by_label[lab])]}", lab)
                   for i, (n, lab) in enumerate(sounds)])
        write_csv(w["esc"], ["filename", "fold", "target", "category", "esc10", "src_file", "take"],
                  [(n, 1 + i % 2, CLASSES.index(lab), lab, "False", n.split(".")[0], "A")
                   for i, (n, lab) in enumerate(sounds)])
        train_tiny_clip(w["images"], pics, w["clip_a"], seed=0)
        cfg_b = json.loads(json.dumps(TINY_CLIP))
        cfg_b["embed_dim"] = 24
        train_tiny_clip(w["images"], pics, w["clip_b"], seed=1, config=cfg_b)
    finally:
        torch.set_num_threads(threads)
    ready.write_text("ok")
    return w


def run_config(w: dict, out: Path, **sections) -> dict:
    """A run config for the tiny world: tiny ViT student, clip_a teacher, class-level pairs."""
    cfg = {
        "out_dir": str(out), "seed": 0,
        "student": {"model": json.loads(json.dumps(TINY_AUDIO_VIT))},
        "teacher": {"model": f"local-dir:{w['clip_a']}", "space": "tiny-clip-a"},
        "data": {"train": str(w["train"]), "images": str(w["image_manifest"]), "preload": True},
        "loss": {"temperature": 0.1, "positives": "labels"},
        "optim": {"lr": 3e-3, "weight_decay": 0.05, "warmup_steps": 10},
        "train": {"batch_size": 16, "steps": 100, "log_every": 10, "checkpoint_every": 50,
                  "progress": False, "threads": 1},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg
