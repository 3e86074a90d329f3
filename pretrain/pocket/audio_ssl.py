"""Self-supervised start for the pocket audio ConvNet: SimCLR on the unlabelled pool.

Two augmented views of one pool clip (random 0.7-1.4x window, volume, mixing with another pool
clip, frequency and time masks) must pick each other out of the batch (NT-Xent through a small
projector, dropped afterwards). No labels, no text, no pictures: the emergent stage then starts
from these weights instead of random ones. Checkpoints atomically every ``SAVE_EVERY`` steps and
resumes from them when the same recipe runs again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SAVE_EVERY = 100


# what the code makes of a recipe (views, starting weights): a state saved by other code is not resumed
SSL_VERSION = "views=cropped,init=torch-default"


def _ssl_key(recipe) -> str:
    """What the SSL run depends on: a checkpoint of another recipe (or other code) is not resumed."""
    fields = ("ssl_steps", "ssl_batch", "ssl_lr", "ssl_temperature", "seed", "channels", "strides", "fc",
              "dropout", "mel_bins", "clip_seconds", "frame_length_ms", "frame_shift_ms", "target_frames",
              "fbank_mean", "fbank_std", "freq_mask", "time_mask", "volume", "duration", "mix_prob", "mix_gain")
    described = {f: getattr(recipe, f) for f in fields} | {"version": SSL_VERSION}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


class ViewMaker:
    """Augmented log-mel views of pool waves, shaped like the ConvNet's training input [N, 1, mel, frames].

    The segment of jittered duration keeps its tempo (cut or zero-padded at the window), where the
    emergent stage's ``pretrain.augment.sample_audio_clip`` stretches it to the window. Two SSL runs
    through ``sample_audio_clip`` lost validation zero-shot and detection to this one: with the
    stretch 42.8% / AP50 0.132 (three emergent seeds), without it 45.6% / 0.152, these views 47.9% /
    0.170 (one SSL run each: the gap may be that run's luck). The fbank, padding and masks are the
    emergent stage's own (``AudioBatchTransform``, unstretched), which makes exactly these tensors.
    """

    def __init__(self, waves: list[np.ndarray], recipe, rng: np.random.Generator):
        from ..augment import AudioBatchTransform
        from .audio_encoder import fbank_config

        self.waves, self.r, self.rng = waves, recipe, rng
        self.transform = AudioBatchTransform(fbank_config(recipe))

    def _crop(self, wave: np.ndarray) -> np.ndarray:
        length = int(16000 * self.r.clip_seconds * self.rng.uniform(*self.r.duration))
        if len(wave) > length:
            start = int(self.rng.integers(0, len(wave) - length + 1))
            wave = wave[start:start + length]
        return wave

    def _view(self, i: int) -> torch.Tensor:
        r = self.r
        wave = self._crop(self.waves[i]) * self.rng.uniform(*r.volume)
        if self.rng.random() < r.mix_prob:  # another pool clip underneath: the view must still be this one
            other = self._crop(self.waves[int(self.rng.integers(len(self.waves)))]) * self.rng.uniform(*r.mix_gain)
            n = min(len(wave), len(other))
            wave = wave.copy()
            wave[:n] += other[:n]
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        return x - x.mean()

    def _mask(self) -> tuple[int, int, int, int]:
        """SpecAugment masks as ``AudioBatchTransform`` reads them: freq start, width, time start, width."""
        f = int(self.rng.integers(0, self.r.freq_mask + 1))
        f0 = int(self.rng.integers(0, self.r.mel_bins - f + 1))
        t = int(self.rng.integers(0, self.r.time_mask + 1))
        t0 = int(self.rng.integers(0, self.r.target_frames - t + 1))
        return f0, f, t0, t

    def pairs(self, index: np.ndarray) -> torch.Tensor:
        """2B views: rows i and i + B are two views of clip index[i]."""
        from ..augment import AudioClip, collate_clips

        waves = [self._view(int(i)) for i in index] + [self._view(int(i)) for i in index]
        return self.transform(**collate_clips([AudioClip(w, 1.0, self._mask()) for w in waves]))


def nt_xent(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCLR loss for 2B unit embeddings (row i pairs with row i +- B) and the pairing accuracy."""
    b = z.shape[0] // 2
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(sim, target), (sim.argmax(1) == target).float().mean()


def pretrain_on_pool(student: nn.Module, waves: list[np.ndarray], recipe, work: Path, progress: bool = True,
                     log: Callable[[str], None] = print) -> dict:
    """Train ``student`` (in place) on the pool; returns a summary. Resumes ``work/ssl_state.pt``."""
    from tqdm import tqdm

    if len(waves) < 2 * recipe.ssl_batch:
        raise ValueError(f"the unlabelled pool has {len(waves)} clips; ssl_batch {recipe.ssl_batch} needs at "
                         f"least {2 * recipe.ssl_batch} (lower ssl_batch, or rebuild the pool)")
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    dim = student.embed_dim
    projector = nn.Sequential(nn.Linear(dim, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128))
    params = list(student.parameters()) + list(projector.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.ssl_lr, weight_decay=recipe.weight_decay)
    steps, warm = recipe.ssl_steps, min(recipe.warmup_steps, recipe.ssl_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(warm, 1)) * (
        recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    rng = np.random.default_rng(recipe.seed)
    views = ViewMaker(waves, recipe, rng)
    work.mkdir(parents=True, exist_ok=True)
    state_path, key = work / "ssl_state.pt", _ssl_key(recipe)
    start, history, seconds_before = 0, [], 0.0  # seconds of earlier, interrupted runs of this recipe
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        if state.get("key") == key and state.get("pool_clips") == len(waves):
            student.load_state_dict(state["student"])
            projector.load_state_dict(state["projector"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            start, history = state["step"], state["history"]
            seconds_before = float(state.get("seconds", 0.0))
            log(f"audio ssl: resuming at step {start} of {steps}")

    def save(step: int) -> None:
        tmp = state_path.with_suffix(".tmp")
        torch.save({"key": key, "pool_clips": len(waves), "step": step, "student": student.state_dict(),
                    "projector": projector.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "history": history,
                    "seconds": seconds_before + time.time() - t0}, tmp)
        os.replace(tmp, state_path)

    student.train()
    projector.train()
    t0 = time.time()
    bar = tqdm(range(start, steps), desc="audio ssl", initial=start, total=steps, disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        x = views.pairs(rng.choice(len(waves), recipe.ssl_batch, replace=False))
        z = F.normalize(projector(student(x, output="raw")), dim=-1)
        loss, acc = nt_xent(z, recipe.ssl_temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            history.append({"step": step, "loss": loss.item(), "pair_acc": acc.item()})
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc.item():.2f}")
        if (step + 1) % SAVE_EVERY == 0 or step == steps - 1:
            save(step + 1)
    bar.close()
    last = history[-1] if history else {"loss": float("nan"), "pair_acc": float("nan")}
    minutes = (seconds_before + time.time() - t0) / 60  # the whole SSL run, resumed parts included
    summary = {"steps": steps, "pool_clips": len(waves), "pool_hours": sum(len(w) for w in waves) / 16000 / 3600,
               "final_loss": last["loss"], "final_pair_acc": last["pair_acc"], "minutes": minutes, "history": history}
    log(f"audio ssl: {steps} steps on {len(waves)} unlabelled clips, loss {last['loss']:.3f}, "
        f"pair accuracy {last['pair_acc']:.2f} ({summary['minutes']:.1f} min)")
    return summary
