"""Audio augmentation for training (ImageBind Table 9, AVID-CMA supplement).

Split in two so the expensive part runs batched on the training device:

* ``sample_audio_clip`` (data workers, per sample, with the sample's own RNG): temporal jitter --
  a segment of random start and duration ``clip_seconds * U[duration]`` -- volume jitter, mean
  subtraction; it also draws the frequency/time mask positions. Pure function of (waveform, rng).
* ``AudioBatchTransform`` (training step, batched, CPU or GPU): Kaldi fbank of all segments,
  each segment's frames rescaled to ``clip_seconds`` worth of frames (AVID's "rescaling back to the
  expected number of audio frames": tempo changes, pitch does not), zero-padded to the model's
  frame count exactly as evaluation pads, normalized, then SpecAugment masks.

Evaluation uses ``encoders.AudioPreprocessor`` unchanged (3 evenly spaced clips, no augmentation),
so training and evaluation differ only by the augmentation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from encoders.audio import AudioFbankConfig, kaldi_fbank

from .config import AugmentConfig


@dataclass
class AudioClip:
    wave: torch.Tensor  # [L] float32, mean-subtracted
    stretch: float  # output frames per input frame
    mask: tuple[int, int, int, int]  # freq start, freq width, time start, time width


def sample_audio_clip(wav: torch.Tensor, fb: AudioFbankConfig, aug: AugmentConfig | None,
                      rng: np.random.Generator) -> AudioClip:
    """One training clip of a waveform already at ``fb.sample_rate`` ([C, T] or [T]; channel 0 is
    used, as the reference preprocessing does)."""
    x = wav[0] if wav.ndim == 2 else wav
    sr = fb.sample_rate
    clip = int(round(fb.clip_seconds * sr))
    n = x.shape[-1]
    if aug is not None and aug.temporal_jitter:
        lo, hi = aug.duration
        seg = max(1, int(round(fb.clip_seconds * rng.uniform(lo, hi) * sr)))
    else:
        seg = clip
    stretch = clip / seg
    start = int(rng.integers(0, n - seg + 1)) if n > seg else 0
    piece = x[start: start + seg].clone()
    if aug is not None and aug.volume is not None:
        piece *= float(rng.uniform(*aug.volume))
    piece -= piece.mean()
    fmask = tmask = (0, 0)
    if aug is not None and aug.freq_mask > 0:
        w = int(rng.integers(0, aug.freq_mask + 1))
        fmask = (int(rng.integers(0, max(fb.mel_bins - w, 0) + 1)), w)
    if aug is not None and aug.time_mask > 0:
        w = int(rng.integers(0, aug.time_mask + 1))
        tmask = (int(rng.integers(0, max(fb.target_frames - w, 0) + 1)), w)
    return AudioClip(piece, stretch, fmask + tmask)


def collate_clips(clips: list[AudioClip]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(c.wave) for c in clips], dtype=torch.long)
    wave = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        wave[i, : len(c.wave)] = c.wave
    return {"wave": wave, "lengths": lengths,
            "stretch": torch.tensor([c.stretch for c in clips], dtype=torch.float32),
            "mask": torch.tensor([c.mask for c in clips], dtype=torch.long)}


class AudioBatchTransform:
    """Batched waveform segments -> model input [B, 1, mel_bins, target_frames] on their device."""

    def __init__(self, fb: AudioFbankConfig):
        self.fb = fb

    def __call__(self, wave: torch.Tensor, lengths: torch.Tensor, stretch: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        fb = self.fb
        win = int(fb.sample_rate * fb.frame_length_ms * 0.001)
        lengths = lengths.clamp(min=win)  # shorter than one window: one frame of padded signal
        if wave.shape[1] < win:
            wave = F.pad(wave, (0, win - wave.shape[1]))
        hop = int(fb.sample_rate * fb.frame_shift_ms * 0.001)
        frames = 1 + (lengths - win).div(hop, rounding_mode="floor")  # kaldi_fbank's own count
        # each row's valid frames resampled to round(frames * stretch) output frames (linear,
        # endpoints kept), then cropped / zero-padded to target_frames like evaluation
        out_frames = torch.round(frames.float() * stretch.to(frames.device)).clamp(min=1)
        # the fbank only of the frames that the first target_frames outputs read (+2: the right
        # neighbour and float rounding); frames past the window cost a third of a step otherwise
        last = (out_frames.clamp(max=fb.target_frames) - 1) * (frames.float() - 1) / (out_frames - 1).clamp(min=1)
        mel, frames = kaldi_fbank(wave.float(), lengths, fb.sample_rate, fb.mel_bins, fb.frame_length_ms,
                                  fb.frame_shift_ms, max_frames=int(last.max().floor().item()) + 3)  # [B, F, mel]
        b, total, _ = mel.shape
        frames, out_frames = frames.to(mel.device), out_frames.to(mel.device)
        t = torch.arange(fb.target_frames, device=mel.device, dtype=torch.float32)[None]
        src = t * (frames.float() - 1).clamp(min=0)[:, None] / (out_frames - 1).clamp(min=1)[:, None]
        i0 = src.floor().long().clamp(0, max(total - 1, 0))
        i1 = (i0 + 1).clamp(max=max(total - 1, 0))
        i1 = torch.minimum(i1, (frames - 1).clamp(min=0)[:, None])
        w = (src - i0.float()).unsqueeze(-1)
        rows = torch.arange(b, device=mel.device)[:, None]
        resampled = mel[rows, i0] * (1 - w) + mel[rows, i1] * w  # [B, target, mel]
        valid = (t < out_frames[:, None]).unsqueeze(-1)
        x = torch.where(valid, resampled, torch.zeros_like(resampled))  # pad with 0 BEFORE norm
        x = (x.transpose(1, 2) - fb.mean) / fb.std  # [B, mel, target]
        mask = mask.to(mel.device)
        if mask.any():
            m = torch.arange(fb.mel_bins, device=mel.device)[None]
            f = (m >= mask[:, 0:1]) & (m < mask[:, 0:1] + mask[:, 1:2])
            tt = torch.arange(fb.target_frames, device=mel.device)[None]
            tm = (tt >= mask[:, 2:3]) & (tt < mask[:, 2:3] + mask[:, 3:4])
            x = x.masked_fill(f[:, :, None] | tm[:, None, :], 0.0)
        return x.unsqueeze(1)
