"""Audio preprocessing: ImageBind's recipe, batched.

The reference (ImageBind ``data.load_and_transform_audio_data``) does, per file: resample to
16 kHz; take 3 clips of 2 s with pytorchvideo's ConstantClipsPerVideoSampler (clip k starts at
k * max(duration - 2, 0) / 3 s); per clip subtract the mean and compute a Kaldi fbank (128 mel bins,
25 ms hanning window, 10 ms shift, dither 0, first channel); pad with 0 or crop to 204 frames;
normalize with mean -4.268, std 9.138.

Two details matter for exactness and are reproduced here on purpose:
* the mean is subtracted IN PLACE on a view of the file's waveform, so when clips overlap
  (files shorter than 8 s) clip k sees the samples that clips < k already shifted;
* the mean is taken over all channels while the fbank reads channel 0 only.

Unlike the reference we accept arrays and tensors, pad files shorter than one 25 ms window with
zeros instead of failing, and compute all clips' fbanks in one batched pass (also on GPU).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .inputs import InputError, as_list, check_finite, describe, existing_file

AudioInput = Any  # path | np.ndarray | torch.Tensor | (array, sample_rate)


@dataclass
class AudioFbankConfig:
    """ImageBind-style log-mel preprocessing (defaults = the reference)."""

    kind: Literal["audio_fbank"] = "audio_fbank"
    sample_rate: int = 16000
    clip_seconds: float = 2.0
    clips: int = 3
    mel_bins: int = 128
    target_frames: int = 204
    mean: float = -4.268
    std: float = 9.138
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    # "reference": in-place subtraction on the shared waveform, as ImageBind does;
    # "per_clip": each clip's own mean on untouched samples.
    mean_subtraction: Literal["reference", "per_clip"] = "reference"

    def validate(self, where: str) -> None:
        if self.sample_rate <= 0 or self.clips <= 0 or self.mel_bins <= 0 or self.target_frames <= 0:
            raise InputError(f"{where}: sample_rate, clips, mel_bins and target_frames must be positive")
        if self.std <= 0:
            raise InputError(f"{where}: std must be positive, got {self.std}")


# ----------------------------------------------------------------------------------------- loading

def load_audio(item: AudioInput, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """Read one input into a float32 tensor [channels, samples] and its sample rate.

    Paths are decoded with soundfile (wav, flac, ogg/vorbis, ...). Arrays/tensors may be [T],
    [C, T] or [T, C] (the longer axis is time) and need ``sample_rate`` unless given as a tuple
    ``(array, sample_rate)``.
    """
    name = describe(item)
    if isinstance(item, (str, os.PathLike)):
        path = existing_file(item, "audio")
        import soundfile as sf

        try:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError
            raise InputError(
                f"could not decode audio file '{path}': {e}. Supported are the formats libsndfile "
                f"reads (wav, flac, ogg/vorbis, opus, mp3 with libsndfile>=1.1); convert others "
                f"first, e.g. `ffmpeg -i '{path.name}' -ar 16000 out.wav`") from None
        wav = torch.from_numpy(np.ascontiguousarray(data.T))
    else:
        sr = None
        if isinstance(item, tuple) and len(item) == 2:
            item, sample_rate = item
        if sample_rate is None:
            raise InputError(f"audio given as {name} needs its sample rate: pass sample_rate=... "
                             f"or a tuple (array, sample_rate)")
        if isinstance(item, np.ndarray):
            if not np.issubdtype(item.dtype, np.number):
                raise InputError(f"audio array {name} has dtype {item.dtype}; expected numbers")
            if np.issubdtype(item.dtype, np.integer):  # PCM integers -> [-1, 1)
                item = item.astype(np.float32) / float(np.iinfo(item.dtype).max + 1)
            wav = torch.from_numpy(np.asarray(item, dtype=np.float32))
        elif isinstance(item, torch.Tensor):
            wav = item.detach().to("cpu", torch.float32)
        else:
            raise InputError(f"cannot read audio from {name}; expected a path, numpy array or tensor")
        if wav.ndim == 1:
            wav = wav[None]
        elif wav.ndim == 2:
            if wav.shape[0] > wav.shape[1]:  # [T, C] -> [C, T]
                wav = wav.T
        else:
            raise InputError(f"audio {name} has {wav.ndim} dimensions; expected [samples], "
                             f"[channels, samples] or [samples, channels]")
        wav = wav.contiguous()
        sr = sample_rate
    if not isinstance(sr, (int, float)) or sr <= 0 or int(sr) != sr:
        raise InputError(f"sample rate of audio {name} must be a positive integer in Hz, got {sr!r}")
    sr = int(sr)
    if wav.shape[-1] == 0:
        raise InputError(f"audio {name} has no samples (zero length); pass a non-empty recording")
    check_finite(wav, f"audio {name}")
    return wav, sr


@lru_cache(maxsize=16)
def _mel_banks(mel_bins: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    from torchaudio.compliance.kaldi import get_mel_banks

    banks, _ = get_mel_banks(mel_bins, n_fft, float(sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
    return F.pad(banks, (0, 1))  # [mel, n_fft // 2 + 1]


def clip_bounds(num_samples: int, sample_rate: int, clip_seconds: float, clips: int) -> list[tuple[int, int]]:
    """Sample ranges of the clips, as pytorchvideo's ConstantClipsPerVideoSampler picks them."""
    duration = num_samples / sample_rate
    clip = Fraction(clip_seconds)
    max_start = Fraction(max(duration - clip, 0))
    step = Fraction(max_start, clips)
    bounds = []
    for k in range(clips):
        start = step * k
        bounds.append((int(start * sample_rate), min(int((start + clip) * sample_rate), num_samples)))
    return bounds


def kaldi_fbank(clips: torch.Tensor, lengths: torch.Tensor, sample_rate: int, mel_bins: int,
                frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
                max_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``torchaudio.compliance.kaldi.fbank`` (htk_compat, hanning, dither 0, power, log).

    clips: [N, L] zero-padded waveforms; lengths: [N] valid samples per row.
    Returns (fbank [N, frames, mel_bins], frames per row [N]); rows past a clip's own frame count
    are zero.
    """
    win = int(sample_rate * frame_length_ms * 0.001)
    hop = int(sample_rate * frame_shift_ms * 0.001)
    n_fft = 1 << (win - 1).bit_length()
    n_frames = torch.where(lengths >= win, 1 + (lengths - win).div(hop, rounding_mode="floor"), 0)
    total = int(n_frames.max().item()) if len(n_frames) else 0
    if max_frames is not None:
        total = min(total, max_frames)
    if total == 0:
        return clips.new_zeros(clips.shape[0], 0, mel_bins), n_frames
    need = (total - 1) * hop + win
    if clips.shape[1] < need:
        clips = F.pad(clips, (0, need - clips.shape[1]))
    frames = clips[:, :need].unfold(1, win, hop)  # [N, total, win]
    frames = frames - frames.mean(dim=-1, keepdim=True)  # remove DC offset per frame
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - 0.97 * previous  # pre-emphasis, first sample replicated
    window = torch.hann_window(win, periodic=False, device=frames.device, dtype=frames.dtype)
    frames = F.pad(frames * window, (0, n_fft - win))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = _mel_banks(mel_bins, n_fft, sample_rate).to(power.device, power.dtype)
    mel = torch.matmul(power, banks.T)
    mel = torch.max(mel, torch.tensor(torch.finfo(mel.dtype).eps, device=mel.device)).log()
    valid = torch.arange(total, device=mel.device)[None, :] < n_frames.to(mel.device)[:, None]
    return mel * valid[..., None], n_frames


class AudioPreprocessor:
    """Inputs -> model tensor [N, clips, 1, mel_bins, target_frames] (float32, CPU or ``device``)."""

    def __init__(self, config: AudioFbankConfig | None = None):
        self.config = config or AudioFbankConfig()

    def waveform_clips(self, wav: torch.Tensor, sr: int) -> list[torch.Tensor]:
        """Resampled, mean-subtracted clips (channel 0) of one file, as the reference builds them."""
        c = self.config
        if sr != c.sample_rate:
            import torchaudio

            wav = torchaudio.functional.resample(wav, orig_freq=sr, new_freq=c.sample_rate)
        wav = wav.clone()
        out = []
        for a, b in clip_bounds(wav.shape[-1], c.sample_rate, c.clip_seconds, c.clips):
            if c.mean_subtraction == "reference":
                view = wav[:, a:b]
                view -= view.mean()  # in place on the shared waveform, like the reference
                out.append(view[0].clone())
            else:
                piece = wav[:, a:b]
                out.append((piece - piece.mean())[0])
        return out

    def __call__(self, inputs: AudioInput | Sequence[AudioInput], sample_rate: int | None = None,
                 device: str | torch.device | None = None) -> torch.Tensor:
        c = self.config
        clips: list[torch.Tensor] = []
        for item in as_list(inputs):
            wav, sr = load_audio(item, sample_rate)
            clips.extend(self.waveform_clips(wav, sr))
        return self.fbank_from_clips(clips, device)

    def fbank_from_clips(self, clips: list[torch.Tensor], device=None) -> torch.Tensor:
        """Mean-subtracted waveform clips (a multiple of ``clips`` per file) -> model tensor."""
        c = self.config
        lengths = torch.tensor([len(x) for x in clips])
        win = int(c.sample_rate * c.frame_length_ms * 0.001)
        width = max(int(lengths.max()), win)
        batch = torch.zeros(len(clips), width)
        for i, x in enumerate(clips):
            batch[i, : len(x)] = x
        # a clip shorter than one window gets one frame of zero-padded signal, not an error
        lengths = lengths.clamp(min=win)
        if device is not None:
            batch, lengths = batch.to(device), lengths.to(device)
        mel, _ = kaldi_fbank(batch, lengths, c.sample_rate, c.mel_bins, c.frame_length_ms,
                             c.frame_shift_ms, max_frames=c.target_frames)
        mel = F.pad(mel, (0, 0, 0, c.target_frames - mel.shape[1]))  # pad with 0 BEFORE normalizing
        mel = (mel.transpose(1, 2) - c.mean) / c.std
        return mel.reshape(-1, c.clips, 1, c.mel_bins, c.target_frames)


def is_silent(wav: torch.Tensor, threshold_db: float = -70.0) -> bool:
    """True when the RMS level is below ``threshold_db`` dBFS (no usable sound)."""
    rms = wav.float().pow(2).mean().sqrt().item()
    return rms == 0.0 or 20 * math.log10(rms) < threshold_db
