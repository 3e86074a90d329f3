"""Batched image augmentation for pocket renders (RGBA cut-outs) and scene crops, in torch.

A pocket render is one object on a transparent 128x128 canvas. Training views are made on the
whole batch at once (no per-image PIL work, which would cost more than the model on 2 cores):

  sketch (outline-only line art, as OpenMoji's black style)  ->  colour jitter / grayscale
  ->  random affine (scale, aspect, rotation, flip, shift)  ->  composite under the alpha on a
  white / flat / gradient / noise / photo background  ->  optional low resolution (small scene
  objects)  ->  normalise.

Everything runs at the model's input size: the caller passes renders already resized to it (with
PIL's antialiased bicubic, as the public preprocessing does), which keeps a batch of views far
cheaper than the model step.

White backgrounds stay frequent because the public path (``encoders.embed_image``) composites
RGBA on white: that is what users and the evaluation feed the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.5, 1.1)  # object size relative to its render (log-uniform)
    aspect: tuple[float, float] = (0.8, 1.25)
    rotate_deg: float = 20.0
    shift: float = 0.2  # max centre shift, fraction of the canvas half-width
    flip: float = 0.5
    sketch: float = 0.15  # probability of turning a render into outline-only line art
    grayscale: float = 0.2
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    hue: float = 0.04  # max hue rotation, fraction of a full turn
    # background mix (normalised): white is the evaluation condition
    bg_white: float = 0.35
    bg_flat: float = 0.15
    bg_gradient: float = 0.1
    bg_noise: float = 0.1
    bg_photo: float = 0.3
    low_res: float = 0.15  # probability of down/up-sampling (small objects in scenes)
    low_res_px: tuple[int, int] = (16, 40)
    # scene crops (already opaque, already at model size): lighter geometry
    crop_scale: tuple[float, float] = (0.9, 1.15)
    crop_shift: float = 0.08

    def at_strength(self, s: float) -> "AugmentConfig":
        """This config scaled toward no augmentation (s=0: identity views on white; s=1: itself).

        Training ramps s up: on clean views the towers find the classes within ~100 steps; from the
        full mix at step 0 they need several times longer.
        """
        s = min(max(float(s), 0.0), 1.0)
        rng = lambda lo_hi, one: tuple(one + s * (v - one) for v in lo_hi)  # noqa: E731
        return dataclasses.replace(
            self, scale=rng(self.scale, 1.0), aspect=rng(self.aspect, 1.0), rotate_deg=s * self.rotate_deg,
            shift=s * self.shift, sketch=s * self.sketch, grayscale=s * self.grayscale,
            brightness=s * self.brightness, contrast=s * self.contrast, saturation=s * self.saturation,
            hue=s * self.hue, bg_white=1 - s * (1 - self.bg_white), bg_flat=s * self.bg_flat,
            bg_gradient=s * self.bg_gradient, bg_noise=s * self.bg_noise, bg_photo=s * self.bg_photo,
            low_res=s * self.low_res, crop_scale=rng(self.crop_scale, 1.0), crop_shift=s * self.crop_shift)


def _rand(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.exp(_rand(n, math.log(lo), math.log(hi), gen))


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0


def _edges(x: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of a [N, 1, H, W] map."""
    kx = _SOBEL.view(1, 1, 3, 3).to(x)
    gx = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kx)
    gy = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kx.transpose(-1, -2))
    return torch.sqrt(gx * gx + gy * gy + 1e-12)


def sketch(rgba: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Colour cut-outs -> black outlines on transparent (OpenMoji's line style, roughly)."""
    rgb, alpha = rgba[:, :3], rgba[:, 3:4]
    over_white = _luminance(rgb) * alpha + (1 - alpha)
    e = _edges(over_white) + _edges(alpha)
    gain = _rand(rgba.shape[0], 2.0, 5.0, gen).view(-1, 1, 1, 1)
    lines = (e * gain).clamp(0, 1)
    if float(torch.rand(1, generator=gen)) < 0.25:  # now and then thicker strokes
        lines = F.max_pool2d(lines, 3, stride=1, padding=1)
    return torch.cat([torch.zeros_like(rgb), lines], dim=1)


def colour_jitter(rgb: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    n = rgb.shape[0]
    shape = (n, 1, 1, 1)
    rgb = rgb * _rand(n, 1 - cfg.brightness, 1 + cfg.brightness, gen).view(shape)
    mean = _luminance(rgb).mean(dim=(2, 3), keepdim=True)
    rgb = (rgb - mean) * _rand(n, 1 - cfg.contrast, 1 + cfg.contrast, gen).view(shape) + mean
    gray = _luminance(rgb)
    rgb = (rgb - gray) * _rand(n, 1 - cfg.saturation, 1 + cfg.saturation, gen).view(shape) + gray
    if cfg.hue > 0:  # rotate chroma in YIQ
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        angle = _rand(n, -cfg.hue, cfg.hue, gen) * 2 * math.pi
        c, s = torch.cos(angle), torch.sin(angle)
        rot = torch.zeros(n, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
        m = torch.linalg.inv(yiq) @ rot @ yiq  # [n, 3, 3]
        rgb = torch.einsum("nij,njhw->nihw", m, rgb)
    gray_mask = (torch.rand(n, generator=gen) < cfg.grayscale).view(shape)
    rgb = torch.where(gray_mask, _luminance(rgb).expand_as(rgb), rgb)
    return rgb.clamp(0, 1)


def _affine(x: torch.Tensor, scale: torch.Tensor, aspect: torch.Tensor, angle: torch.Tensor,
            flip: torch.Tensor, shift: torch.Tensor, padding: str, size: int | None = None) -> torch.Tensor:
    """Warp [N, C, H, W] to [N, C, size, size]: output pixel -> input location (grid_sample's convention)."""
    n = x.shape[0]
    c, s = torch.cos(angle), torch.sin(angle)
    sx = flip / (scale * aspect.sqrt())
    sy = 1 / (scale / aspect.sqrt())
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = c * sx, -s * sx
    theta[:, 1, 0], theta[:, 1, 1] = s * sy, c * sy
    theta[:, :, 2] = -shift  # move the object by +shift in output coordinates (approximately)
    size = size or x.shape[-1]
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def backgrounds(n: int, size: int, photos: torch.Tensor | None, cfg: AugmentConfig,
                gen: torch.Generator) -> torch.Tensor:
    """[n, 3, size, size] backgrounds drawn from the configured mix."""
    kinds = torch.tensor([cfg.bg_white, cfg.bg_flat, cfg.bg_gradient, cfg.bg_noise,
                          cfg.bg_photo if photos is not None and len(photos) else 0.0])
    kind = torch.multinomial(kinds / kinds.sum(), n, replacement=True, generator=gen)
    out = torch.ones(n, 3, size, size)
    idx = (kind == 1).nonzero().flatten()
    if len(idx):
        out[idx] = torch.rand(len(idx), 3, 1, 1, generator=gen).expand(-1, -1, size, size)
    idx = (kind == 2).nonzero().flatten()
    if len(idx):
        a, b = torch.rand(len(idx), 3, 1, 1, generator=gen), torch.rand(len(idx), 3, 1, 1, generator=gen)
        angle = torch.rand(len(idx), generator=gen) * 2 * math.pi
        lin = torch.linspace(-1, 1, size)
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        t = (xx[None] * torch.cos(angle).view(-1, 1, 1) + yy[None] * torch.sin(angle).view(-1, 1, 1))
        t = ((t + 1.5) / 3).clamp(0, 1)[:, None]
        out[idx] = a + (b - a) * t
    idx = (kind == 3).nonzero().flatten()
    if len(idx):
        coarse = torch.rand(len(idx), 3, 6, 6, generator=gen)
        out[idx] = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    idx = (kind == 4).nonzero().flatten()
    if len(idx):
        pick = torch.randint(0, len(photos), (len(idx),), generator=gen)
        zoom = _rand(len(idx), 1.0, 4.0, gen)  # 1: the whole photo, 4: a quarter of its side
        limit = 1 - 1 / zoom
        shift = (torch.rand(len(idx), 2, generator=gen) * 2 - 1) * limit[:, None]
        flip = torch.where(torch.rand(len(idx), generator=gen) < 0.5, -1.0, 1.0)
        src = photos[pick].float() / 255.0
        out[idx] = _affine(src, zoom, torch.ones(len(idx)), torch.zeros(len(idx)), flip, -shift, "reflection",
                           size)
    return out


def _finish(x: torch.Tensor, mean, std, cfg: AugmentConfig, gen: torch.Generator,
            low_res: bool = True) -> torch.Tensor:
    n = x.shape[0]
    if low_res and cfg.low_res > 0:
        idx = (torch.rand(n, generator=gen) < cfg.low_res).nonzero().flatten()
        for i in idx.tolist():  # few per batch; each gets its own size
            px = int(torch.randint(cfg.low_res_px[0], cfg.low_res_px[1] + 1, (1,), generator=gen))
            small = F.interpolate(x[i: i + 1], size=(px, px), mode="bilinear", antialias=True, align_corners=False)
            x[i: i + 1] = F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False)
    x = x.clamp(0, 1)
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x - mean) / std


def augment_renders(rgba: torch.Tensor, mean, std, photos: torch.Tensor | None,
                    cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """[N, 4, S, S] float RGBA in [0, 1] -> [N, 3, S, S] normalised training views."""
    if rgba.ndim != 4 or rgba.shape[1] != 4:
        raise ValueError(f"augment_renders expects RGBA batches [N, 4, H, W], got {tuple(rgba.shape)}")
    n = rgba.shape[0]
    rgba = rgba.float()
    sk = (torch.rand(n, generator=gen) < cfg.sketch).nonzero().flatten()
    if len(sk):
        rgba = rgba.clone()
        rgba[sk] = sketch(rgba[sk], gen)
    rgb = colour_jitter(rgba[:, :3], cfg, gen)
    alpha = rgba[:, 3:4]
    premultiplied = torch.cat([rgb * alpha, alpha], dim=1)
    scale = _log_uniform(n, *cfg.scale, gen)
    aspect = _log_uniform(n, *cfg.aspect, gen)
    angle = _rand(n, -cfg.rotate_deg, cfg.rotate_deg, gen) * math.pi / 180
    flip = torch.where(torch.rand(n, generator=gen) < cfg.flip, -1.0, 1.0)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * cfg.shift
    warped = _affine(premultiplied, scale, aspect, angle, flip, shift, "zeros")
    bg = backgrounds(n, rgba.shape[-1], photos, cfg, gen)
    composite = warped[:, :3] + bg * (1 - warped[:, 3:4])
    return _finish(composite, mean, std, cfg, gen)


def augment_crops(rgb: torch.Tensor, mean, std, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """[N, 3, S, S] uint8 scene crops (already at model size) -> normalised training views."""
    n = rgb.shape[0]
    x = colour_jitter(rgb.float() / 255.0, cfg, gen)
    scale = _rand(n, *cfg.crop_scale, gen)
    flip = torch.where(torch.rand(n, generator=gen) < cfg.flip, -1.0, 1.0)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * cfg.crop_shift
    x = _affine(x, scale, torch.ones(n), torch.zeros(n), flip, shift, "border")
    return _finish(x, mean, std, cfg, gen, low_res=False)
