"""Clips: decode, 16 kHz mono, trim silence, fingerprint, and group variants into recordings.

Recording rule (what makes two files "one recording"), applied within a category:
  1. same name stem: same package and directory, and the file names agree once a trailing take
     number and edit tags are removed ("sheep_00"/"sheep_02", "LRBark_1_LA_cut"/"LRBark_3_LA_cut",
     "fire_fire.1"/"fire_fire.3"); OpenSFX clips share a stem when their credit names the same
     original file (two edits of "steam train horn 01.wav");
  2. same sound: the fingerprint similarity (below) is >= SAME_RECORDING. It catches copies across
     packages, renamed copies, trimmed copies, time-stretched and pitch-shifted edits.
Groups are the connected components of both relations (union-find), so a chain of edits lands
in one recording -- except that a clip of a source added later (a higher cohort) never merges two
earlier recordings: it joins the first it matches, so adding a source leaves earlier ones intact. Exact copies (identical 16 kHz PCM) and near-copies (similarity
>= NEAR_DUPLICATE and durations within 10%) are dropped, keeping the first in sorted order.

Measured on real clips: edits of one take (pitch +2/-3 semitones by resampling, 30-40% trims,
noise at -30 dB) score 0.71-0.96; different takes of the same animal from different packages
peaked at 0.63. Noise-like sounds (fire, rain) lose their pattern when pitch-shifted, so for
them rule 1 (name stems) does the work.

Fingerprint: a log-frequency spectrogram (bins two semitones wide, 200 Hz-7 kHz, 20 ms frames),
z-scored. Similarity = the best Pearson correlation over time lags (overlap >= half the shorter
clip), over time-stretch factors 2^(k/12) (k = -4..4) and pitch shifts of 0..+-2 bins, where a
resampling pitch shift moves time and frequency together. Log-frequency makes a pitch shift an
exact shift along the frequency axis, which is why it is used instead of mel bands.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
MAX_SECONDS = 12.0  # longer ambient loops are cut: enough for 2 s training windows
SILENCE_DB = -50.0  # below peak frame level, for trimming
SILENT_PEAK = 10 ** (-50 / 20)  # a clip whose peak is under -50 dBFS is silent
SAME_RECORDING = 0.70  # calibrated: cross-package takes of one animal peaked at 0.63
NEAR_DUPLICATE = 0.95

_FRAME = 320  # 20 ms at 16 kHz
_NFFT = 1024
_BINS_PER_OCTAVE = 6
_F_LO, _F_HI = 200.0, 7000.0


class AudioError(ValueError):
    pass


def decode(data: bytes, name: str) -> np.ndarray:
    """Any soundfile-readable bytes -> float32 mono at 16 kHz."""
    import soundfile as sf  # noqa: PLC0415
    try:
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{name}: cannot decode ({err}); the file may be truncated, re-extract "
                         "its package (delete it from the cache)") from None
    mono = wave.mean(axis=1)
    return resample(mono, rate)


def resample(wave: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return wave.astype(np.float32)
    import torch  # noqa: PLC0415
    import torchaudio.functional as AF  # noqa: PLC0415
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), rate, SAMPLE_RATE)
    return out.numpy().astype(np.float32)


def frame_db(wave: np.ndarray, frame: int = 160) -> np.ndarray:
    if len(wave) < frame:  # a clip shorter than one frame (a few samples) is one padded frame
        wave = np.pad(wave, (0, frame - len(wave)))
    n = max(1, len(wave) // frame)
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms + 1e-12)


def trim_silence(wave: np.ndarray, below_peak_db: float = SILENCE_DB, pad: int = 320) -> np.ndarray:
    """Cut leading/trailing 10 ms frames quieter than peak-frame level + below_peak_db."""
    if len(wave) == 0:
        return wave
    db = frame_db(wave)
    loud = np.flatnonzero(db >= db.max() + below_peak_db)
    start = max(0, loud[0] * 160 - pad)
    end = min(len(wave), (loud[-1] + 1) * 160 + pad)
    return wave[start:end]


def is_silent(wave: np.ndarray) -> bool:
    return len(wave) == 0 or float(np.abs(wave).max()) < SILENT_PEAK


def pcm16(wave: np.ndarray) -> np.ndarray:
    return (np.clip(wave, -1, 1) * 32767).round().astype(np.int16)


def pcm_hash(wave: np.ndarray) -> str:
    return hashlib.sha1(pcm16(wave).tobytes()).hexdigest()


# --- fingerprint -------------------------------------------------------------------------

def fingerprint(wave: np.ndarray) -> np.ndarray:
    """z-scored log-frequency spectrogram, shape (bins, frames)."""
    wave = wave[: int(10 * SAMPLE_RATE)]
    if len(wave) < _NFFT:
        wave = np.pad(wave, (0, _NFFT - len(wave)))
    n = 1 + (len(wave) - _NFFT) // _FRAME
    idx = np.arange(_NFFT)[None, :] + _FRAME * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(wave[idx] * np.hanning(_NFFT), axis=1)) ** 2  # (frames, freqs)
    band = spec @ _log_filterbank().T  # (frames, bins)
    db = 10 * np.log10(band + 1e-12)
    db = np.maximum(db, db.max() - 60)
    feat = db.T  # (bins, frames)
    # double-centre: drop each band's average level (the timbre every cow shares) and each
    # frame's loudness, so what is left is the take's own time-frequency pattern
    feat = feat - feat.mean(axis=1, keepdims=True)
    feat = feat - feat.mean(axis=0, keepdims=True)
    return feat / (feat.std() + 1e-6)


_FILTERBANK: list[np.ndarray] = []


def _log_filterbank() -> np.ndarray:
    """Triangles one bin wide on a log2 axis: a pitch shift becomes a shift along bins."""
    if not _FILTERBANK:
        freqs = np.fft.rfftfreq(_NFFT, 1 / SAMPLE_RATE)
        n_bins = int(np.floor(np.log2(_F_HI / _F_LO) * _BINS_PER_OCTAVE)) + 1
        centres = _F_LO * 2 ** (np.arange(n_bins) / _BINS_PER_OCTAVE)
        octaves = np.log2(np.maximum(freqs, 1.0)[None, :] / centres[:, None])
        weights = np.maximum(0.0, 1 - np.abs(octaves) * _BINS_PER_OCTAVE)
        _FILTERBANK.append(weights / weights.sum(axis=1, keepdims=True))
    return _FILTERBANK[0]


def _stretch(feat: np.ndarray, factor: float) -> np.ndarray:
    n = feat.shape[1]
    m = max(1, int(round(n * factor)))
    if m == n:
        return feat
    src = np.linspace(0, n - 1, m)
    return np.stack([np.interp(src, np.arange(n), row) for row in feat])


def _best_lag_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Max Pearson correlation of a and b (same bins) over time lags with enough overlap."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    na, nb = a.shape[1], b.shape[1]
    min_overlap = min(na, nb, max(10, int(0.5 * min(na, nb))))
    size = 1 << int(np.ceil(np.log2(na + nb)))
    cross = np.fft.irfft(np.fft.rfft(a, size, axis=1) * np.conj(np.fft.rfft(b, size, axis=1)),
                         size, axis=1).sum(axis=0)
    # lag L means a[:, t] meets b[:, t - L]; L in [-(nb - 1), na - 1]
    lags = np.arange(-(nb - min_overlap), na - min_overlap + 1)
    xy = cross[lags % size]
    start_a = np.maximum(lags, 0)
    end_a = np.minimum(na, nb + lags)
    start_b = start_a - lags
    end_b = end_a - lags
    ca = np.concatenate([[0], np.cumsum(a.sum(0))])
    qa = np.concatenate([[0], np.cumsum((a ** 2).sum(0))])
    cb = np.concatenate([[0], np.cumsum(b.sum(0))])
    qb = np.concatenate([[0], np.cumsum((b ** 2).sum(0))])
    count = (end_a - start_a) * a.shape[0]
    sa, sqa = ca[end_a] - ca[start_a], qa[end_a] - qa[start_a]
    sb, sqb = cb[end_b] - cb[start_b], qb[end_b] - qb[start_b]
    cov = xy - sa * sb / count
    # a flat stretch (variance far under the unit variance of the whole clip) has no pattern
    # to match: floor it so it cannot produce a spurious high correlation
    floor = 0.05 * count
    var = np.sqrt(np.maximum(sqa - sa ** 2 / count, floor) * np.maximum(sqb - sb ** 2 / count, floor))
    return float(np.max(cov / var))


# (time factor, bin shift): resampling pitch shifts move both; stretch alone; shift alone
_TRANSFORMS = sorted({(2 ** (k / 12), int(round(k / 2))) for k in range(-4, 5)} |
                     {(2 ** (k / 12), 0) for k in range(-4, 5)} |
                     {(1.0, s) for s in range(-2, 3)})


def similarity(fa: np.ndarray, fb: np.ndarray) -> float:
    """How likely fb is an edit (trim, stretch, pitch shift, copy) of the same take as fa."""
    best = -1.0
    for factor, shift in _TRANSFORMS:
        b = _stretch(fb, factor)
        if shift > 0:
            a_cut, b_cut = fa[shift:], b[:-shift]
        elif shift < 0:
            a_cut, b_cut = fa[:shift], b[-shift:]
        else:
            a_cut, b_cut = fa, b
        best = max(best, _best_lag_corr(a_cut, b_cut))
    return best


# --- grouping ----------------------------------------------------------------------------

_EDIT_TAGS = re.compile(r"([_\- ](la|cut|la_cut|edit|loop|mono|stereo))+$", re.IGNORECASE)
_TAKE_NUMBER = re.compile(r"[._\- ]?\d+$")


def name_stem(path: str) -> str:
    """Directory + file name without extension, edit tags and trailing take number."""
    head, _, name = path.rpartition("/")
    base = name.rsplit(".", 1)[0] if "." in name else name
    # edit tags first, then ONE take number: "LRBark_1_LA_cut" -> "LRBark_1" -> "LRBark",
    # while "bird1_00" -> "bird1" keeps bird species 1 apart from bird species 2
    base = _EDIT_TAGS.sub("", base) or base
    base = _TAKE_NUMBER.sub("", base) or base
    return f"{head}/{base.lower()}"


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


@dataclass
class Grouping:
    keep: list[int]  # indices of clips kept
    dropped: dict[int, tuple[int, str]]  # dropped index -> (kept index it copies, "exact"|"near")
    recording: dict[int, int]  # kept index -> recording number (0..R-1, by first member)
    links: list[tuple[int, int, str, float]]  # (i, j, "stem"|"sound", similarity) that joined


def group_recordings(waves: list[np.ndarray], stems: list[str],
                     same: float = SAME_RECORDING, near: float = NEAR_DUPLICATE,
                     cohorts: list[int] | None = None) -> Grouping:
    """Dedupe and group the clips of ONE category (see the module docstring for the rule).

    ``cohorts`` (non-decreasing, one per clip; default all 0): pairs are joined cohort by cohort,
    and a clip of a later cohort may join ONE earlier recording but never merge two of them, so
    adding a source leaves the earlier recordings exactly as they were.
    """
    n = len(waves)
    cohorts = list(cohorts) if cohorts is not None else [0] * n
    if len(cohorts) != n or any(a > b for a, b in zip(cohorts, cohorts[1:])):
        raise ValueError("cohorts must give one non-decreasing cohort per clip (sort clips by cohort)")
    hashes = [pcm_hash(w) for w in waves]
    first_by_hash: dict[str, int] = {}
    dropped: dict[int, tuple[int, str]] = {}
    for i, h in enumerate(hashes):
        if h in first_by_hash:
            dropped[i] = (first_by_hash[h], "exact")
        else:
            first_by_hash[h] = i
    alive = [i for i in range(n) if i not in dropped]
    feats = {i: fingerprint(waves[i]) for i in alive}
    uf = UnionFind(n)
    links: list[tuple[int, int, str, float]] = []
    # pairs in order of their later clip's cohort (i-major within it, as before cohorts existed)
    pairs = sorted(((i, j) for a_pos, i in enumerate(alive) for j in alive[a_pos + 1:]),
                   key=lambda p: cohorts[p[1]])

    def join(i: int, j: int) -> bool:
        ri, rj = uf.find(i), uf.find(j)
        # roots are the smallest index, i.e. the earliest cohort of their recording
        if ri != rj and cohorts[ri] < cohorts[j] and cohorts[rj] < cohorts[j]:
            return False  # would merge two recordings of earlier cohorts
        uf.union(i, j)
        return True

    for i, j in pairs:
        if j in dropped:  # (a dropped i still links: it is the same sound as its kept copy)
            continue
        sim = similarity(feats[i], feats[j])  # the transform set is symmetric
        ratio = len(waves[j]) / max(1, len(waves[i]))
        if sim >= near and 0.9 <= ratio <= 1.1:
            dropped[j] = (i, "near")
            join(i, j)
            continue
        how = "sound" if sim >= same else "stem" if stems[i] == stems[j] else ""
        if how and join(i, j):
            links.append((i, j, how, sim))
    keep = [i for i in range(n) if i not in dropped]
    roots: dict[int, int] = {}
    recording = {}
    for i in keep:
        recording[i] = roots.setdefault(uf.find(i), len(roots))
    return Grouping(keep, dropped, recording, links)
