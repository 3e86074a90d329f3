"""The pocket unCLIP: a small Stable-unCLIP-style image generator conditioned on pocket CLIP image
embeddings, trained on the pocket renders and shipped as ``adapters/weights/pocket_unclip``.

    python -m pretrain.pocket train --data /work/data/pocket --stages unclip

What it builds: a diffusers ``StableUnCLIPImg2ImgPipeline`` (``adapters.unclip.build_pipeline``) whose
trained parts are
- a VAE (``AutoencoderKL``, 64x64 RGB <-> 16x16x4 latents) trained on augmented renders composited on
  white, with reconstruction (L1 + MSE), a small KL term and a cheap edge term (outlines carry the
  class in line-art emoji);
- a UNet (``UNet2DConditionModel``, no cross-attention: the stand-in text encoder gives zeros) whose
  only condition is the pocket CLIP IMAGE embedding, given as Stable unCLIP does: the embedding,
  rescaled to ``embed_norm``, noised by the pipeline's own ``noise_image_embeddings`` at a random
  ``noise_level``, concatenated with the level's sinusoidal embedding, into ``class_embed_type =
  "projection"``. v-prediction on the pipeline's sampling schedule (SD 2.x scaled-linear), and the
  whole condition row zeroed with probability ``cond_dropout`` (the pipeline's unconditional input for
  classifier-free guidance is all zeros).

Everything expensive is cached once per run: augmented views, their VAE latent distributions and
their CLIP embeddings. The UNet then trains on cached tensors only (many short steps).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .manifests import IMAGE_COLUMNS, read_manifest
from .train import warmup_cosine

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "adapters" / "weights" / "pocket_unclip"
FIGURES = REPO / "docs" / "figures" / "pocket"
IMAGE_SIZE = 64


def _shown_path(path) -> str:
    """A path for a record: repo-relative inside the checkout (records ship), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# ------------------------------------------------------------------------------------------ data

@dataclass
class Renders:
    """Renders of one split at the model's size: premultiplied RGB + alpha, and their labels."""
    rgb: torch.Tensor  # [N, 3, S, S] float in [0, 1], premultiplied by alpha
    alpha: torch.Tensor  # [N, 1, S, S]
    labels: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def on_white(self) -> torch.Tensor:
        """[N, 3, S, S] composited on white: what ``encoders`` feeds the CLIP for an RGBA file."""
        return self.rgb + (1 - self.alpha)


def load_renders(data: Path, split: str, size: int = IMAGE_SIZE, classes=None) -> Renders:
    """The split's RGBA renders, resized to ``size`` with PIL's antialiased bicubic (as the public
    preprocessing resizes), alpha kept so views can be composited on any background."""
    from PIL import Image

    manifest = Path(data) / "manifests" / f"images_{split}.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing; build the data with "
                                f"`python -m pretrain.pocket data --out {data}`")
    rows = read_manifest(manifest, IMAGE_COLUMNS)
    if classes is not None:
        rows = [r for r in rows if r["label"] in set(classes)]
    rgb, alpha = [], []
    for row in rows:
        img = Image.open(Path(data) / row["path"]).convert("RGBA")
        # premultiply before resizing so transparent pixels' colours never bleed into edges
        arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        pm = torch.cat([arr[:3] * arr[3:], arr[3:]])
        pm_img = [Image.fromarray((c.numpy() * 255).round().astype(np.uint8)) for c in pm]
        pm_small = torch.stack([torch.from_numpy(np.asarray(c.resize((size, size), Image.BICUBIC),
                                                            dtype=np.float32) / 255.0) for c in pm_img])
        a = pm_small[3:].clamp(0, 1)
        rgb.append(torch.minimum(pm_small[:3].clamp(0, 1), a))
        alpha.append(a)
    if not rows:
        raise ValueError(f"{manifest} lists no images" + (f" of classes {sorted(classes)}" if classes else ""))
    return Renders(torch.stack(rgb), torch.stack(alpha), [r["label"] for r in rows], [r["path"] for r in rows])


@dataclass
class ViewConfig:
    """Random views of a render: geometry and mild colour changes, composited on white (the
    evaluation condition) or, for the CLIP condition only, sometimes on a random background."""
    scale: tuple[float, float] = (0.75, 1.05)  # log-uniform object size
    rotate_deg: float = 10.0
    shift: float = 0.12  # max centre shift, fraction of the half-width
    flip: float = 0.5
    brightness: float = 0.08
    saturation: float = 0.15


def random_views(renders: Renders, index: torch.Tensor, cfg: ViewConfig, gen: torch.Generator,
                 identity: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Views of ``renders[index]``: ([B, 3, S, S] premultiplied RGB, [B, 1, S, S] alpha).

    ``identity`` (bool [B]) marks views to leave untouched (the clean render).
    """
    rgb, alpha = renders.rgb[index], renders.alpha[index]
    b = len(index)

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    scale = torch.exp(uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    angle = uniform(-cfg.rotate_deg, cfg.rotate_deg) * math.pi / 180
    flip = torch.where(torch.rand(b, generator=gen) < cfg.flip, -1.0, 1.0)
    tx, ty = uniform(-cfg.shift, cfg.shift), uniform(-cfg.shift, cfg.shift)
    bright = uniform(1 - cfg.brightness, 1 + cfg.brightness)
    sat = uniform(1 - cfg.saturation, 1 + cfg.saturation)
    if identity is not None:
        scale, angle, tx, ty = [torch.where(identity, d, v) for v, d in
                                ((scale, torch.ones(b)), (angle, torch.zeros(b)), (tx, torch.zeros(b)),
                                 (ty, torch.zeros(b)))]
        flip, bright, sat = [torch.where(identity, torch.ones(b), v) for v in (flip, bright, sat)]
    # output -> input sampling grid: inverse of (scale, rotate, flip, shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, sin, -tx], 1), torch.stack([-sin * flip, cos, -ty], 1)], 1)
    grid = F.affine_grid(theta, list(rgb.shape[:1]) + [4] + list(rgb.shape[2:]), align_corners=False)
    warped = F.grid_sample(torch.cat([rgb, alpha], 1), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    rgb, alpha = warped[:, :3], warped[:, 3:]
    grey = rgb.mean(1, keepdim=True)
    rgb = (grey + (rgb - grey) * sat[:, None, None, None]) * bright[:, None, None, None]
    rgb = torch.minimum(rgb.clamp(0, 1), alpha)  # stays premultiplied
    return rgb, alpha


def composite(rgb: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor | float = 1.0) -> torch.Tensor:
    return (rgb + (1 - alpha) * background).clamp(0, 1)


def edges(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradients [B, 2C, H, W] of an image batch (a cheap outline term for the VAE loss)."""
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype) / 4
    c = x.shape[1]
    kx = k.view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return torch.cat([F.conv2d(xp, kx, groups=c), F.conv2d(xp, kx.transpose(-1, -2), groups=c)], 1)


# ------------------------------------------------------------------------------------------- VAE

@dataclass
class VaeRecipe:
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # 3 levels: 64 px -> 16x16 latents (4x down)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    steps: int = 400
    batch_size: int = 32
    crop: int = 32  # trains on random crops (fully convolutional): a quarter of the full-size cost
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    kl_weight: float = 1e-5  # per latent element, against per-pixel L1: keeps latents smooth, not blurry
    edge_weight: float = 1.0
    chroma_weight: float = 2.0  # extra L1 on opponent colours: rare reds / greens otherwise collapse to brown
    identity_fraction: float = 0.25  # clean renders among the views

    def model_config(self) -> dict:
        n = len(self.block_out_channels)
        return dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                    up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(self.block_out_channels),
                    layers_per_block=self.layers_per_block, latent_channels=self.latent_channels,
                    norm_num_groups=self.norm_num_groups, sample_size=IMAGE_SIZE)


def build_vae(recipe: VaeRecipe, seed: int):
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(**recipe.model_config())


def random_crops(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    if size >= x.shape[-1]:
        return x
    b, s = x.shape[0], x.shape[-1]
    ys = torch.randint(0, s - size + 1, (b,), generator=gen)
    xs = torch.randint(0, s - size + 1, (b,), generator=gen)
    return torch.stack([x[i, :, ys[i]:ys[i] + size, xs[i]:xs[i] + size] for i in range(b)])


def vae_loss(vae, images: torch.Tensor, recipe: VaeRecipe, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """images in [0, 1] -> (loss, parts). The VAE works in [-1, 1], as diffusers' image processor expects."""
    x = images * 2 - 1
    dist = vae.encode(x).latent_dist
    z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen)
    recon = vae.decode(z).sample
    l1 = (recon - x).abs().mean()
    edge = (edges(recon) - edges(x)).abs().mean()
    chroma = (opponent_colours(recon) - opponent_colours(x)).abs().mean()
    kl = 0.5 * (dist.mean.pow(2) + dist.var - 1.0 - dist.logvar).mean()
    loss = l1 + recipe.edge_weight * edge + recipe.chroma_weight * chroma + recipe.kl_weight * kl
    return loss, {"l1": l1.item(), "edge": edge.item(), "chroma": chroma.item(), "kl": kl.item()}


def opponent_colours(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB -> [B, 2, H, W] red-green and yellow-blue opponent channels."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.cat([r - g, (r + g) / 2 - b], 1)


def train_vae(renders: Renders, recipe: VaeRecipe, views: ViewConfig, seed: int, progress: bool = True,
              log=None):
    """Train the VAE on random views (on white) of ``renders``; returns (vae in eval mode, history rows)."""
    from tqdm.auto import tqdm

    vae = build_vae(recipe, seed).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed + 1)
    history = []
    bar = tqdm(range(recipe.steps), desc="unclip vae", disable=not progress, dynamic_ncols=True)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = recipe.lr * warmup_cosine(step, recipe.steps, recipe.warmup_steps, recipe.min_lr_ratio)
        index = torch.randint(len(renders), (recipe.batch_size,), generator=gen)
        identity = torch.rand(recipe.batch_size, generator=gen) < recipe.identity_fraction
        images = composite(*random_views(renders, index, views, gen, identity))
        loss, parts = vae_loss(vae, random_crops(images, recipe.crop, gen), recipe, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        row = {"part": "vae", "step": step, "loss": loss.item(), **parts, "lr": opt.param_groups[0]["lr"]}
        history.append(row)
        bar.set_postfix(loss=f"{loss.item():.4f}", l1=f"{parts['l1']:.4f}")
        if log is not None:
            log(row)
    return vae.eval(), history


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """[0, 1] images -> their VAE reconstructions through the latent means, in [0, 1]."""
    out = []
    for chunk in images.split(batch_size):
        z = vae.encode(chunk * 2 - 1).latent_dist.mean
        out.append(((vae.decode(z).sample + 1) / 2).clamp(0, 1))
    return torch.cat(out)


# --------------------------------------------------------------------------------- CLIP conditions

def load_clip(clip=None, modalities=("vision", "text")):
    """The CLIP the unCLIP is conditioned on and judged by: None = the shipped ``pocket`` encoders; a
    config name, a saved encoder folder or a ``MultimodalEncoder`` otherwise (its space must be
    ``pocket`` for the result to ship as the default)."""
    import encoders

    if isinstance(clip, encoders.MultimodalEncoder):
        return clip
    return encoders.create(clip or "pocket", modalities=modalities)


def _image_preprocess_config(vision) -> tuple[int, torch.Tensor, torch.Tensor]:
    cfg = vision.preprocessor.config
    return cfg.size, torch.tensor(cfg.mean)[:, None, None], torch.tensor(cfg.std)[:, None, None]


@torch.no_grad()
def clip_image_embeddings(vision, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """[N, 3, H, W] images in [0, 1] (already composited) -> [N, D] unit embeddings, preprocessed as
    ``encoders.embed_image`` does (8-bit quantised, bicubic resize to the tower's size, normalised)."""
    size, mean, std = _image_preprocess_config(vision)
    out = []
    for chunk in images.split(batch_size):
        x = (chunk.clamp(0, 1) * 255).round() / 255
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        out.append(vision((x - mean) / std, output="unit").float())
    return torch.cat(out)


# ------------------------------------------------------------------------------------- the cache

@dataclass
class TrainingCache:
    """Everything the UNet trains on, computed once: per view, its latent distribution and the CLIP
    image embedding of the same view (the condition)."""
    latent_mean: torch.Tensor  # [M, C, h, w]
    latent_std: torch.Tensor  # [M, C, h, w]
    embeddings: torch.Tensor  # [M, D] unit
    labels: torch.Tensor  # [M] class index
    image_index: torch.Tensor  # [M] which render the view came from
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@torch.no_grad()
def build_cache(renders: Renders, vae, vision, views: ViewConfig, views_per_image: int, seed: int,
                class_names: list[str], batch_size: int = 64, progress: bool = True) -> TrainingCache:
    """``views_per_image`` views of every render (the first is the clean render), on white."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed + 2)
    n = len(renders)
    index = torch.arange(n).repeat_interleave(views_per_image)
    identity = (torch.arange(len(index)) % views_per_image) == 0
    means, stds, embs = [], [], []
    chunks = range(0, len(index), batch_size)
    for start in tqdm(chunks, desc="unclip cache", disable=not progress, dynamic_ncols=True):
        sl = slice(start, start + batch_size)
        images = composite(*random_views(renders, index[sl], views, gen, identity[sl]))
        dist = vae.encode(images * 2 - 1).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
        embs.append(clip_image_embeddings(vision, images))
    labels = torch.tensor([class_names.index(renders.labels[i]) for i in index.tolist()])
    return TrainingCache(torch.cat(means), torch.cat(stds), torch.cat(embs), labels, index, list(class_names))


# ------------------------------------------------------------------------------------------ UNet

@dataclass
class UnetRecipe:
    block_out_channels: tuple[int, ...] = (64, 128, 128)  # 16x16 -> 8x8 -> 4x4 latents
    down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
    layers_per_block: int = 1
    attention_head_dim: int = 32
    cross_attention_dim: int = 32  # unused (no cross-attention blocks); sizes the stand-in text encoder
    steps: int = 2800  # the shipped run (49 min on 1 shared thread); 700 steps gave image / text / audio 0.11 / 0.13 / 0.09
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    # Min-SNR-gamma weighting (None: plain v-MSE, as SD 2.x). For v-prediction it weights high-noise steps
    # by ~SNR, i.e. almost not at all -- and those are where the UNet learns to follow the condition.
    min_snr_gamma: float | None = None
    time_embedding_dim: int | None = 256  # the condition's path into every ResNet (default: 4 x first block)
    cond_dropout: float = 0.1  # whole condition row -> 0, the pipeline's unconditional input
    noise_level_max: int = 600  # embedding noise augmentation, uniform in [0, max) ...
    noise_level_zero: float = 0.25  # ... or exactly 0 (the pipeline's default level) this often
    class_mean_fraction: float = 0.2  # condition on the mean embedding of a few same-class views
    class_mean_views: int = 4

    def model_config(self, embed_dim: int, latent_channels: int, latent_size: int) -> dict:
        up = tuple(t.replace("Down", "Up") for t in reversed(self.down_block_types))
        return dict(sample_size=latent_size, in_channels=latent_channels, out_channels=latent_channels,
                    down_block_types=tuple(self.down_block_types), up_block_types=up,
                    mid_block_type="UNetMidBlock2D", block_out_channels=tuple(self.block_out_channels),
                    layers_per_block=self.layers_per_block, attention_head_dim=self.attention_head_dim,
                    norm_num_groups=32, cross_attention_dim=self.cross_attention_dim,
                    class_embed_type="projection", projection_class_embeddings_input_dim=2 * embed_dim,
                    resnet_time_scale_shift="scale_shift", time_embedding_dim=self.time_embedding_dim)


def build_unet(recipe: UnetRecipe, embed_dim: int, latent_channels: int, latent_size: int, seed: int):
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DConditionModel(**recipe.model_config(embed_dim, latent_channels, latent_size))


def training_scheduler():
    """The noise schedule the UNet trains on: the pipeline's sampling schedule (SD 2.x scaled-linear,
    v-prediction), as a DDPM scheduler for ``add_noise`` / ``get_velocity``."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                         beta_end=0.012, prediction_type="v_prediction", clip_sample=False)


def sampling_scheduler():
    """The scheduler shipped in the pipeline: DPM-Solver++ on the training schedule (good in 10-25 steps)."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                                       beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
                                       timestep_spacing="trailing")


@torch.no_grad()
def noised_conditions(pipe, embeds: torch.Tensor, levels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``pipe.noise_image_embeddings`` with one noise level per row: [B, D] -> [B, 2D] class labels.

    Same steps, same components: normaliser scale, the embedding-noise scheduler's ``add_noise``,
    unscale, then the level's sinusoidal embedding concatenated.
    """
    from diffusers.models.embeddings import get_timestep_embedding

    norm = pipe.image_normalizer
    x = norm.scale(embeds)
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    x = pipe.image_noising_scheduler.add_noise(x, noise=noise, timesteps=levels)
    x = norm.unscale(x)
    level = get_timestep_embedding(levels, x.shape[-1], flip_sin_to_cos=True, downscale_freq_shift=0)
    return torch.cat([x, level.to(x.dtype)], 1)


def _class_pools(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(table [C, max] of cache rows per class, sizes [C]) for drawing same-class views."""
    rows = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    sizes = torch.tensor([len(r) for r in rows])
    table = torch.zeros(num_classes, max(1, int(sizes.max())), dtype=torch.long)
    for c, r in enumerate(rows):
        table[c, :len(r)] = r
    return table, sizes


def training_conditions(cache: TrainingCache, rows: torch.Tensor, recipe: UnetRecipe, pools, gen) -> torch.Tensor:
    """Unit condition embeddings for cache ``rows``: the view's own embedding, or (a fraction
    ``class_mean_fraction``) the re-normalised mean embedding of ``class_mean_views`` random views of
    the same class -- the kind of class-level embedding a sound or a caption gives."""
    table, sizes = pools
    emb = cache.embeddings[rows].clone()
    use_mean = torch.rand(len(rows), generator=gen) < recipe.class_mean_fraction
    if use_mean.any():
        labels = cache.labels[rows[use_mean]]
        k = recipe.class_mean_views
        pick = (torch.rand(len(labels), k, generator=gen) * sizes[labels][:, None]).long()
        others = table[labels[:, None], pick]  # [n, k]
        emb[use_mean] = cache.embeddings[others].mean(1)
    return F.normalize(emb, dim=-1)


def train_unet(cache: TrainingCache, pipe, recipe: UnetRecipe, embed_norm: float, seed: int,
               progress: bool = True, log=None):
    """Train ``pipe.unet`` in place on the cache (EMA weights copied in at the end); returns history."""
    import copy

    from tqdm.auto import tqdm

    unet = pipe.unet.train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    sched = training_scheduler()
    alphas = sched.alphas_cumprod
    opt = torch.optim.AdamW(unet.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    gen = torch.Generator().manual_seed(seed + 3)
    scaling = float(pipe.vae.config.scaling_factor)
    pools = _class_pools(cache.labels, len(cache.class_names))
    b = recipe.batch_size
    hidden = torch.zeros(b, 1, unet.config.cross_attention_dim)
    history = []
    bar = tqdm(range(recipe.steps), desc="unclip unet", disable=not progress, dynamic_ncols=True)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = recipe.lr * warmup_cosine(step, recipe.steps, recipe.warmup_steps, recipe.min_lr_ratio)
        rows = torch.randint(len(cache), (b,), generator=gen)
        z0 = (cache.latent_mean[rows] + cache.latent_std[rows] *
              torch.randn(cache.latent_mean[rows].shape, generator=gen)) * scaling
        emb = training_conditions(cache, rows, recipe, pools, gen) * embed_norm
        levels = torch.randint(0, recipe.noise_level_max, (b,), generator=gen)
        levels[torch.rand(b, generator=gen) < recipe.noise_level_zero] = 0
        cond = noised_conditions(pipe, emb, levels, gen)
        cond[torch.rand(b, generator=gen) < recipe.cond_dropout] = 0.0
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        zt = sched.add_noise(z0, noise, t)
        target = sched.get_velocity(z0, noise, t)
        pred = unet(zt, t, hidden, class_labels=cond).sample
        if recipe.min_snr_gamma:
            snr = alphas[t] / (1 - alphas[t])
            weight = snr.clamp(max=recipe.min_snr_gamma) / (snr + 1)
        else:
            weight = torch.ones(b)
        per_sample = (pred - target).pow(2).mean((1, 2, 3))
        loss = (weight * per_sample).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(recipe.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), unet.parameters()):
                p_ema.lerp_(p, 1 - decay)
        row = {"part": "unet", "step": step, "loss": loss.item(), "mse_v": per_sample.mean().item(),
               "grad_norm": float(grad_norm), "lr": opt.param_groups[0]["lr"]}
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        if log is not None:
            log(row)
    unet.load_state_dict(ema.state_dict())
    unet.eval()
    return history


# ------------------------------------------------------------------------------- pipeline + eval

def embedding_statistics(embeddings_unit: torch.Tensor, embed_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean / std of the training conditions at the scale they are fed (the
    normaliser's statistics: ``noise_level`` noise is added in these standardised units). The std is
    floored at a quarter of its median so a near-constant dimension cannot blow up off-distribution
    inputs (text, audio) when standardised."""
    scaled = embeddings_unit.float() * embed_norm
    std = scaled.std(0)
    return scaled.mean(0), std.clamp(min=0.25 * float(std.median()))


def assemble_pipeline(unet, vae, space, embeddings_unit: torch.Tensor, embed_norm: float):
    """The ``UnclipGenerator`` around the (trained or untrained) parts, via ``adapters.unclip.build_pipeline``."""
    from adapters.unclip import build_pipeline

    mean, std = embedding_statistics(embeddings_unit, embed_norm)
    gen = build_pipeline(unet, vae, space, embedding_mean=mean, embedding_std=std,
                         image_embed_norm=embed_norm, scheduler=sampling_scheduler())
    gen.pipe.set_progress_bar_config(disable=True)
    return gen


def pil_to_tensor(images) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
                        for im in images])


@torch.no_grad()
def generate_images(gen, embeddings: torch.Tensor, *, num_inference_steps: int, guidance_scale: float,
                    noise_level: int, seed: int, batch_size: int = 50) -> torch.Tensor:
    """[N, D] embeddings (the pipeline's space) -> [N, 3, H, W] images in [0, 1], through the public
    ``UnclipGenerator.generate`` (norm="stats"); chunk k uses seed ``seed + k``."""
    out = []
    for k, chunk in enumerate(embeddings.split(batch_size)):
        images = gen.generate(chunk, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                              noise_level=noise_level, seed=seed + k)
        out.append(pil_to_tensor(images))
    return torch.cat(out)


@torch.no_grad()
def classify(vision, images: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """Zero-shot class index of each image: argmax cosine against the class text embeddings."""
    return (clip_image_embeddings(vision, images) @ F.normalize(class_embeddings.float(), dim=-1).T).argmax(1)


# --------------------------------------------------------------------------------------- recipe

@dataclass
class SamplingSettings:
    num_inference_steps: int = 20
    guidance_scale: float = 3.0
    noise_level: int = 0

    def as_kwargs(self) -> dict:
        return asdict(self)


@dataclass
class UnclipRecipe:
    seed: int = 0
    threads: int = 1
    views: ViewConfig = field(default_factory=ViewConfig)
    vae: VaeRecipe = field(default_factory=VaeRecipe)
    unet: UnetRecipe = field(default_factory=UnetRecipe)
    views_per_image: int = 8  # cached views per train render (the first is the clean render)
    embed_norm: float = 16.0  # conditions are unit CLIP embeddings x this (sqrt(256): ~unit per dimension)
    save_dtype: str = "float16"
    # sampling settings tried on VAL (image + text conditions); the best becomes the recommended one
    sweep: list = field(default_factory=lambda: [
        {"num_inference_steps": 20, "guidance_scale": g, "noise_level": n}
        for g in (2.0, 4.0) for n in (0,)])
    eval_seeds: int = 1  # samples per held-out image / sound; text gets 2x as many per class

    @classmethod
    def from_dict(cls, data: dict) -> "UnclipRecipe":
        data = dict(data)
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown UnclipRecipe field(s) {sorted(unknown)}; known: {sorted(known)}")
        parts = {"views": ViewConfig, "vae": VaeRecipe, "unet": UnetRecipe}
        for name, kind in parts.items():
            if name in data and not isinstance(data[name], kind):
                sub = dict(data[name])
                bad = set(sub) - set(kind.__dataclass_fields__)
                if bad:
                    raise ValueError(f"unknown {kind.__name__} field(s) {sorted(bad)}; "
                                     f"known: {sorted(kind.__dataclass_fields__)}")
                data[name] = kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()})
        return cls(**data)

    def validate(self) -> None:
        if self.vae.steps < 1 or self.unet.steps < 1:
            raise ValueError("vae.steps and unet.steps must be >= 1")
        if self.views_per_image < 1:
            raise ValueError(f"views_per_image must be >= 1, got {self.views_per_image}")
        if not self.embed_norm > 0:
            raise ValueError(f"embed_norm must be positive, got {self.embed_norm}")
        if self.save_dtype not in ("float16", "float32"):
            raise ValueError(f"save_dtype must be 'float16' or 'float32', got {self.save_dtype!r}")
        if not 0 <= self.unet.cond_dropout < 1 or not 0 <= self.unet.class_mean_fraction <= 1:
            raise ValueError("unet.cond_dropout must be in [0, 1) and unet.class_mean_fraction in [0, 1]")
        if not 0 < self.unet.noise_level_max <= 1000:
            raise ValueError(f"unet.noise_level_max must be in (0, 1000], got {self.unet.noise_level_max}")
        n = len(self.vae.block_out_channels)
        if IMAGE_SIZE % (2 ** (n - 1)):
            raise ValueError(f"vae.block_out_channels has {n} levels: {IMAGE_SIZE} px does not divide by {2 ** (n - 1)}")
        if not self.sweep:
            raise ValueError("sweep needs at least one sampling setting")
        for s in self.sweep:
            SamplingSettings(**s)


# ----------------------------------------------------------------------------------- evaluation

# Prompts a user would type for a class, used as TEXT conditions (indices into prompts.class_prompts:
# the bare name, "a photo of ...", "a drawing of ...", "an emoji of ...").
TEXT_CONDITION_TEMPLATES = (0, 2, 4, 5)


@dataclass
class Conditions:
    """Held-out conditions of one kind: unit embeddings (pocket space) and their intended classes."""
    kind: str  # "image" | "text" | "audio"
    embeddings: torch.Tensor
    labels: torch.Tensor
    sources: list[str]  # file paths or prompts, for the record


def class_prompt_sets(class_names) -> dict[str, list[str]]:
    from .prompts import class_prompts

    return {n: [class_prompts(n)[i] for i in TEXT_CONDITION_TEMPLATES] for n in class_names}


def canonical_class_embeddings(clip, class_names) -> torch.Tensor:
    """The judge's classifier: the pocket prompt-ensemble text embedding of every class."""
    from .prompts import class_text_embeddings

    return class_text_embeddings(list(class_names), model=clip)


def image_conditions(clip, data: Path, split: str, class_names) -> Conditions:
    """The split's renders through the public path (``encoders.embed_image`` on the files)."""
    import encoders

    rows = read_manifest(Path(data) / "manifests" / f"images_{split}.csv", IMAGE_COLUMNS)
    rows = [r for r in rows if r["label"] in class_names]
    emb = encoders.embed_image([str(Path(data) / r["path"]) for r in rows], model=clip)
    return Conditions("image", emb.float(), torch.tensor([class_names.index(r["label"]) for r in rows]),
                      [r["path"] for r in rows])


def text_conditions(clip, class_names, prompt_sets: dict[str, list[str]]) -> Conditions:
    import encoders

    pairs = [(n, p) for n in class_names if n in prompt_sets for p in prompt_sets[n]]
    emb = encoders.embed_text([p for _, p in pairs], model=clip)
    return Conditions("text", emb.float(), torch.tensor([class_names.index(n) for n, _ in pairs]),
                      [p for _, p in pairs])


def audio_conditions(audio_encoder, data: Path, split: str, class_names, keep=None) -> Conditions:
    """The split's clips (held out by recording) through ``encoders.embed_audio``; labels index
    ``class_names`` (the CLIP's candidates), ``keep`` limits which classes' clips are used."""
    import encoders
    from .manifests import AUDIO_COLUMNS

    rows = read_manifest(Path(data) / "manifests" / f"audio_{split}.csv", AUDIO_COLUMNS)
    keep = set(class_names if keep is None else keep) & set(class_names)
    rows = [r for r in rows if r["label"] in keep]
    emb = encoders.embed_audio([str(Path(data) / r["path"]) for r in rows], model=audio_encoder)
    return Conditions("audio", emb.float(), torch.tensor([class_names.index(r["label"]) for r in rows]),
                      [r["path"] for r in rows])


@torch.no_grad()
def score_conditions(gen, vision, class_embeddings: torch.Tensor, cond: Conditions, settings: SamplingSettings,
                     samples_per_condition: int, seed: int, batch_size: int = 40) -> dict:
    """Generate ``samples_per_condition`` images per condition, judge each with the CLIP.

    Returns images [N*k, 3, H, W], intended labels, predicted labels, overall fraction correct and a
    per-class fraction (classes of the intended labels)."""
    k = samples_per_condition
    emb = cond.embeddings.repeat_interleave(k, 0)
    labels = cond.labels.repeat_interleave(k, 0)
    images = generate_images(gen, emb, seed=seed, batch_size=batch_size, **settings.as_kwargs())
    pred = classify(vision, images, class_embeddings)
    correct = (pred == labels).float()
    per_class = {int(c): float(correct[labels == c].mean()) for c in labels.unique()}
    return {"images": images, "labels": labels, "pred": pred, "fraction": float(correct.mean()),
            "per_class": per_class, "n": len(labels)}


# ------------------------------------------------------------------------------------- figures

def plot_losses(history: list[dict], path: Path) -> None:
    """VAE and UNet training losses (raw and smoothed) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, part, key in ((axes[0], "vae", "loss"), (axes[1], "unet", "loss")):
        rows = [r for r in history if r["part"] == part]
        if not rows:
            continue
        steps = np.array([r["step"] for r in rows])
        loss = np.array([r[key] for r in rows])
        k = max(1, len(loss) // 40)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps, loss, alpha=0.25, color="C0")
        ax.plot(steps[k - 1:], smooth, color="C0")
        ax.set_yscale("log")
        ax.set_title(f"{part}: {'L1 + edge + KL' if part == 'vae' else 'v-prediction MSE'}",
                     fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sample_grid(rows: list[tuple[str, list[torch.Tensor]]], path: Path, cell: int = 64, label_width: int = 110,
                header: list[str] | None = None, wrong: list[list[bool]] | None = None) -> None:
    """One row per class: its name, then its images ([3, H, W] in [0, 1]) left to right; images
    flagged in ``wrong`` get a red frame (the CLIP assigned them to another class)."""
    from PIL import Image, ImageDraw

    cols = max(len(images) for _, images in rows)
    top = 16 if header else 0
    sheet = Image.new("RGB", (label_width + cols * (cell + 2), top + len(rows) * (cell + 2)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, text in enumerate(header or []):
        draw.text((label_width + c * (cell + 2) + 2, 2), text, fill=(90, 90, 90))
    for r, (name, images) in enumerate(rows):
        y = top + r * (cell + 2)
        draw.text((4, y + cell // 2 - 6), name, fill="black")
        for c, img in enumerate(images):
            arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            tile = Image.fromarray(arr)
            if tile.size != (cell, cell):
                tile = tile.resize((cell, cell), Image.BICUBIC)
            sheet.paste(tile, (label_width + c * (cell + 2), y))
            if wrong is not None and wrong[r][c]:
                x0 = label_width + c * (cell + 2)
                draw.rectangle([x0, y, x0 + cell - 1, y + cell - 1], outline=(220, 30, 30), width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


# ---------------------------------------------------------------------------------- the stage

def pocket_audio_encoder():
    """The shipped pocket audio encoder, or None while it is not installed."""
    import encoders

    try:
        return encoders.create("pocket", modalities=("audio",))
    except (KeyError, ValueError, FileNotFoundError, RuntimeError):
        return None


def evaluate_split(gen, clip, data: Path, split: str, settings: SamplingSettings, class_names,
                   samples: int, seed: int, audio_encoder=None, kinds=("image", "text", "audio"),
                   class_embeddings: torch.Tensor | None = None) -> dict:
    """Fraction of generated images the CLIP assigns to the intended class, per condition kind.

    image: every held-out render of the split (``samples`` images each); text: four typed prompts per
    class that has pictures (``samples`` each); audio: every held-out clip of the split (``samples``
    each), when an audio encoder is given. Candidates: all ``class_names`` (chance = 1 / len)."""
    vision = clip["vision"]
    image_classes = sorted(set(load_manifest_labels(data, "train")) & set(class_names), key=class_names.index)
    if class_embeddings is None:
        class_embeddings = canonical_class_embeddings(clip, class_names)
    out = {}
    for kind in kinds:
        if kind == "image":
            cond = image_conditions(clip, data, split, class_names)
        elif kind == "text":
            cond = text_conditions(clip, class_names, class_prompt_sets(image_classes))
        elif kind == "audio":
            if audio_encoder is None:
                continue
            # labels must index class_names, the list the CLIP judges against (image_classes lacks
            # picture-less classes such as xylophone, so its indices are shifted after them)
            cond = audio_conditions(audio_encoder, data, split, class_names, keep=image_classes)
        else:
            raise ValueError(f"unknown condition kind {kind!r}; expected image, text or audio")
        # different seeds per split and kind, so val choices are not tuned to test noise
        kind_seed = seed + 1000 * ("image", "text", "audio").index(kind) + (0 if split == "val" else 500)
        result = score_conditions(gen, vision, class_embeddings, cond, settings, samples, kind_seed)
        result["conditions"] = cond
        out[kind] = result
    return out


def load_manifest_labels(data: Path, split: str) -> list[str]:
    return [r["label"] for r in read_manifest(Path(data) / "manifests" / f"images_{split}.csv", IMAGE_COLUMNS)]


def summarize(results: dict, class_names) -> dict:
    """JSON-ready figures: overall fraction, n, chance, per-class fractions (worst first)."""
    chance = 1 / len(class_names)
    out = {}
    for kind, r in results.items():
        per_class = {class_names[c]: round(v, 4) for c, v in sorted(r["per_class"].items(), key=lambda kv: kv[1])}
        out[kind] = {"fraction": round(r["fraction"], 4), "n": r["n"], "chance": round(chance, 4),
                     "per_class": per_class}
    return out


def save_pipeline(gen, folder: Path, dtype: str, sampling: SamplingSettings) -> int:
    """``UnclipGenerator.save`` with the UNet and VAE stored in ``dtype`` (halves the folder; they load
    back as float32 unless asked otherwise), plus the recommended sampling settings in the note.
    Returns the folder's size in bytes."""
    import json
    import shutil

    folder = Path(folder)
    if folder.exists():  # no stale shards or components from an older layout
        for child in folder.iterdir():
            if child.is_dir() and (child / "config.json").exists():
                shutil.rmtree(child)
    store = torch.float16 if dtype == "float16" else torch.float32
    parts = (gen.pipe.unet, gen.pipe.vae)
    for part in parts:
        part.to(store)
    try:
        gen.save(folder)
    finally:
        for part in parts:
            part.to(torch.float32)
    for config in folder.rglob("*.json"):  # where the pipeline was loaded from: meaningless once shipped
        fields = json.loads(config.read_text())
        if isinstance(fields, dict) and fields.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(fields, indent=2) + "\n")
    note_path = folder / "rebind_space.json"
    note = json.loads(note_path.read_text())
    note["generation_defaults"] = sampling.as_kwargs()
    note_path.write_text(json.dumps(note, indent=2) + "\n")
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json"))


def choose_settings(sweep_rows: list[dict]) -> SamplingSettings:
    """The sweep row with the best mean VAL fraction over the condition kinds measured (ties: fewer
    steps, then lower guidance, then lower noise level)."""
    def key(row):
        s = row["settings"]
        return (-row["mean"], s["num_inference_steps"], s["guidance_scale"], s["noise_level"])
    return SamplingSettings(**min(sweep_rows, key=key)["settings"])


class MetricsLog:
    """Training rows -> a CSV (one file for both parts; columns fixed up front), written as
    ``<path>.partial`` until ``finish()``: a stopped retrain leaves the folder's curve as it was."""
    COLUMNS = ("part", "step", "loss", "l1", "edge", "chroma", "kl", "mse_v", "grad_norm", "lr", "seconds")

    def __init__(self, path: Path):
        import time

        from ..checkpoint import LiveCSV

        self._curve = LiveCSV(path, self.COLUMNS, extrasaction="ignore")
        self._start = time.time()
        self._time = time

    def __call__(self, row: dict) -> None:
        self._curve.write(dict(row, seconds=round(self._time.time() - self._start, 2)), flush=row["step"] % 50 == 0)

    def close(self) -> None:
        self._curve.close()

    def finish(self) -> None:
        self._curve.finish()


def run_unclip_stage(data: Path, out: Path | None = None, recipe: UnclipRecipe | None = None, *, clip=None,
                     audio_encoder="auto", progress: bool = True, log=print) -> dict:
    """Train VAE + UNet, package and save the pipeline, choose sampling settings on VAL, measure on
    TEST, and write recipe JSON, metrics CSV, loss plot, sample grids and the model card.

    out: the pipeline folder (default ``adapters/weights/pocket_unclip``, whose figures go to
    ``docs/figures/pocket``; any other folder gets a ``figures/`` subfolder).
    clip: the CLIP to condition on and judge with (default: the shipped ``pocket`` encoders).
    audio_encoder: "auto" (the shipped pocket audio encoder when installed), None (skip audio), or
    an encoder / config name for ``encoders.embed_audio``.
    """
    import json
    import time

    from .prompts import CLASS_NAMES

    recipe = recipe or UnclipRecipe()
    recipe.validate()
    data = Path(data)
    out = Path(out or DEFAULT_OUT).expanduser().resolve()
    figures = FIGURES if out == DEFAULT_OUT.resolve() else out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    class_names = list(CLASS_NAMES)
    clip = load_clip(clip)
    if audio_encoder == "auto":
        audio_encoder = pocket_audio_encoder()
    timings = {}
    wall0, cpu0 = time.time(), time.process_time()

    def lap(name):
        nonlocal wall0, cpu0
        timings[name] = {"wall_min": round((time.time() - wall0) / 60, 2),
                         "cpu_min": round((time.process_time() - cpu0) / 60, 2)}
        wall0, cpu0 = time.time(), time.process_time()

    metrics = MetricsLog(out / "unclip_metrics.csv")
    try:
        renders = load_renders(data, "train", classes=class_names)
        lap("load")
        vae, vae_history = train_vae(renders, recipe.vae, recipe.views, recipe.seed, progress, metrics)
        lap("vae")
        cache = build_cache(renders, vae, clip["vision"], recipe.views, recipe.views_per_image, recipe.seed,
                            class_names, progress=progress)
        gen = torch.Generator().manual_seed(recipe.seed + 4)
        z = cache.latent_mean + cache.latent_std * torch.randn(cache.latent_mean.shape, generator=gen)
        vae.register_to_config(scaling_factor=float(1 / z.std()))  # unit-variance latents for the UNet
        lap("cache")
        latent_size = IMAGE_SIZE // 2 ** (len(recipe.vae.block_out_channels) - 1)
        unet = build_unet(recipe.unet, clip.space.dim, recipe.vae.latent_channels, latent_size, recipe.seed)
        gen = assemble_pipeline(unet, vae, clip.space, cache.embeddings, recipe.embed_norm)
        unet_history = train_unet(cache, gen.pipe, recipe.unet, recipe.embed_norm, recipe.seed, progress, metrics)
        lap("unet")
    finally:
        metrics.close()
    metrics.finish()
    history = vae_history + unet_history
    plot_losses(history, figures / "unclip_losses.png")
    size = save_pipeline(gen, out, recipe.save_dtype, SamplingSettings())
    log(f"unclip: trained in {timings['vae']['wall_min'] + timings['cache']['wall_min'] + timings['unet']['wall_min']:.1f} min; "
        f"saved {out} ({size / 1e6:.1f} MB)")

    # everything below measures the SAVED pipeline through the public loading path
    from adapters.unclip import load_pipeline

    shipped = load_pipeline(str(out), cache=False)
    shipped.pipe.set_progress_bar_config(disable=True)
    class_embeddings = canonical_class_embeddings(clip, class_names)
    sweep = []
    for settings in recipe.sweep:
        settings = SamplingSettings(**settings)
        res = evaluate_split(shipped, clip, data, "val", settings, class_names, 1, recipe.seed,
                             audio_encoder=audio_encoder, class_embeddings=class_embeddings)
        fractions = {k: round(r["fraction"], 4) for k, r in res.items()}
        row = {"settings": settings.as_kwargs(), **fractions, "mean": round(float(np.mean(list(fractions.values()))), 4)}
        sweep.append(row)
        log(f"unclip: val {row}")
    best = choose_settings(sweep)
    lap("val_sweep")
    save_pipeline(shipped, out, recipe.save_dtype, best)  # records the chosen settings in the note
    test = evaluate_split(shipped, clip, data, "test", best, class_names, recipe.eval_seeds, recipe.seed,
                          audio_encoder=audio_encoder, class_embeddings=class_embeddings)
    lap("test_eval")
    summary = summarize(test, class_names)
    for kind, s in summary.items():
        log(f"unclip: test {kind}-conditioned: {s['fraction']:.3f} correct of {s['n']} (chance {s['chance']:.3f})")
    grids = write_sample_grids(test, class_names, figures, data)
    reference = clip_reference_accuracy(clip, data, "test", class_names, class_embeddings)
    record = {
        "stage": "unclip", "recipe": asdict(recipe), "class_names": class_names, "space": clip.space.name,
        "clip": getattr(clip, "name", str(clip)),
        "vae_config": recipe.vae.model_config(), "vae_scaling_factor": float(vae.config.scaling_factor),
        "unet_config": recipe.unet.model_config(clip.space.dim, recipe.vae.latent_channels, latent_size),
        "params_m": {"vae": round(sum(p.numel() for p in vae.parameters()) / 1e6, 3),
                     "unet": round(sum(p.numel() for p in unet.parameters()) / 1e6, 3)},
        "data": {"dir": str(data), "train_renders": len(renders), "cached_views": len(cache)},
        "timings": timings, "size_mb": round(size / 1e6, 2),
        "environment": {"torch": torch.__version__, "threads": recipe.threads},
        "val_sweep": sweep, "chosen_settings": best.as_kwargs(),
        "test": summary, "clip_on_real_test_renders": reference,
        "audio_encoder": None if audio_encoder is None else getattr(audio_encoder, "name", str(audio_encoder)),
        "figures": {k: _shown_path(v) for k, v in grids.items()},
    }
    (out / "unclip_recipe.json").write_text(json.dumps(record, indent=2) + "\n")
    write_model_card(out / "MODEL_CARD.md", record, figures, out)
    return record


def write_sample_grids(results: dict, class_names, figures: Path, data: Path, columns: int = 8) -> dict:
    """One PNG per condition kind, a row per class: ``unclip_samples_{image,text,audio}.png``.

    image rows alternate a held-out render (the condition) with the samples drawn from it; red
    frames mark samples the CLIP assigned to another class."""
    paths = {}
    for kind, r in results.items():
        cond, k = r["conditions"], len(r["labels"]) // len(r["conditions"].labels)
        rows, wrong = [], []
        for c in sorted(set(cond.labels.tolist())):
            images, flags = [], []
            for i in torch.nonzero(cond.labels == c).flatten().tolist():
                if kind == "image":
                    from PIL import Image

                    real = Image.open(Path(data) / cond.sources[i]).convert("RGBA")
                    white = Image.new("RGBA", real.size, (255, 255, 255, 255))
                    images.append(pil_to_tensor([Image.alpha_composite(white, real).resize((IMAGE_SIZE, IMAGE_SIZE),
                                                                                           Image.BICUBIC)])[0])
                    flags.append(False)
                for j in range(i * k, (i + 1) * k):
                    images.append(r["images"][j])
                    flags.append(bool(r["pred"][j] != r["labels"][j]))
            rows.append((class_names[c], images[:columns]))
            wrong.append(flags[:columns])
        header = {"image": ["render", "samples ->"], "text": ["bare name, 'a photo of', 'a drawing of', 'an emoji of'"],
                  "audio": ["samples from held-out sounds"]}[kind]
        path = figures / f"unclip_samples_{kind}.png"
        sample_grid(rows, path, header=header, wrong=wrong)
        paths[kind] = path
    return paths


@torch.no_grad()
def clip_reference_accuracy(clip, data: Path, split: str, class_names, class_embeddings) -> float:
    """How often the judge assigns the REAL held-out renders to their class (the ceiling)."""
    cond = image_conditions(clip, data, split, class_names)
    pred = (cond.embeddings @ F.normalize(class_embeddings.float(), dim=-1).T).argmax(1)
    return round(float((pred == cond.labels).float().mean()), 4)


def write_model_card(path: Path, record: dict, figures: Path, out: Path) -> None:
    """MODEL_CARD.md of the shipped pipeline, from the run's record."""
    import os

    rel = os.path.relpath(figures, out)
    r, t = record["recipe"], record["timings"]
    train_min = sum(t[k]["wall_min"] for k in ("load", "vae", "cache", "unet"))
    train_cpu = sum(t[k]["cpu_min"] for k in ("load", "vae", "cache", "unet"))
    s = record["chosen_settings"]
    lines = [
        "# pocket unCLIP",
        "",
        "A small Stable-unCLIP-style image generator (diffusers `StableUnCLIPImg2ImgPipeline`) conditioned on",
        f"pocket CLIP IMAGE embeddings (space `{record['space']}`, {record['unet_config']['projection_class_embeddings_input_dim'] // 2}-d), "
        f"{IMAGE_SIZE}x{IMAGE_SIZE} output. rebind's embedded default for",
        "`adapters.unclip.from_audio / from_text / from_image` when no pipeline is given.",
        "Rebuild: `python -m pretrain.pocket train --data DIR --stages unclip` "
        "(recipe and results of this run: `unclip_recipe.json`; training curves: `unclip_metrics.csv`).",
        "",
        "## Data",
        "",
        f"The {record['data']['train_renders']} TRAIN renders of the pocket data (emoji drawings of several artists,",
        "Tux Paint photo cut-outs; 128x128 RGBA, see the data's README and ATTRIBUTION.md), resized to 64 px",
        f"and composited on white as `encoders` composites RGBA; {r['views_per_image']} views per render (the clean render",
        f"plus random scale / rotation / shift / flip / mild colour jitter) = {record['data']['cached_views']} cached views.",
        "VAL renders choose the sampling settings; TEST renders, the class prompts and (when installed) the",
        "TEST sounds measure.",
        "",
        "## Recipe",
        "",
        f"- VAE (`AutoencoderKL`, {record['params_m']['vae']}M params): blocks {list(r['vae']['block_out_channels'])}, "
        f"{r['vae']['latent_channels']} latent channels at {IMAGE_SIZE // 2 ** (len(r['vae']['block_out_channels']) - 1)}x"
        f"{IMAGE_SIZE // 2 ** (len(r['vae']['block_out_channels']) - 1)}; "
        f"{r['vae']['steps']} steps x {r['vae']['batch_size']} random {r['vae']['crop']} px crops (fully convolutional), "
        f"L1 + {r['vae']['edge_weight']} x Sobel-edge L1 + {r['vae']['chroma_weight']} x opponent-colour L1 "
        f"+ {r['vae']['kl_weight']} x KL; AdamW lr {r['vae']['lr']}, cosine. "
        f"Latent scaling factor {record['vae_scaling_factor']:.4f} (1 / std of the cached latents).",
        f"- UNet (`UNet2DConditionModel`, {record['params_m']['unet']}M params): blocks {list(r['unet']['block_out_channels'])}, "
        f"{list(r['unet']['down_block_types'])}, self-attention mid block, no cross-attention (the stand-in text encoder "
        "outputs zeros); the condition enters through `class_embed_type=\"projection\"` "
        "(noised embedding ++ sinusoidal noise-level embedding, as Stable unCLIP).",
        f"- Conditions: the pocket CLIP embedding of the SAME view (unit) x {r['embed_norm']} "
        f"(= the recorded `image_embed_norm`, what `norm=\"stats\"` rescales inputs to); the normaliser holds the "
        "per-dimension mean / std of the training conditions; in {frac:.0%} of samples the condition is the mean "
        "embedding of {k} random views of the same class (the class-level kind of embedding a sound or caption "
        "gives); noise augmentation with the pipeline's own `noise_image_embeddings` at a level uniform in "
        f"[0, {r['unet']['noise_level_max']}) ({r['unet']['noise_level_zero']:.0%} exactly 0); the whole condition "
        f"row zeroed with p = {r['unet']['cond_dropout']} (the pipeline's unconditional input for guidance).".format(
            frac=r["unet"]["class_mean_fraction"], k=r["unet"]["class_mean_views"]),
        f"- Diffusion: v-prediction on SD 2.x's scaled-linear schedule (1000 steps), "
        + (f"Min-SNR-{r['unet']['min_snr_gamma']:g} weighting" if r['unet']['min_snr_gamma'] else "plain v-MSE")
        + f", {r['unet']['steps']} steps x {r['unet']['batch_size']}, AdamW lr {r['unet']['lr']} cosine, EMA "
        f"{r['unet']['ema_decay']}. Sampler shipped: DPM-Solver++ (trailing spacing) on the same schedule.",
        f"- Seed {r['seed']}, {r['threads']} CPU threads; UNet and VAE stored as {r['save_dtype']} "
        f"({record['size_mb']} MB in all), loaded as float32.",
        "",
        f"Training time: {train_min:.1f} min wall ({train_cpu:.1f} CPU-min) on a shared 2-core CPU: "
        + ", ".join(f"{k} {v['wall_min']:.1f} min" for k, v in t.items()) + ".",
        "",
        "## Sampling settings (chosen on VAL)",
        "",
        f"Recorded in `rebind_space.json` as `generation_defaults`: {s['num_inference_steps']} steps, guidance "
        f"{s['guidance_scale']:g}, noise_level {s['noise_level']}.",
        "",
        "| steps | guidance | noise_level | " + " | ".join(k for k in ("image", "text", "audio")
                                                       if any(k in row for row in record["val_sweep"])) + " | mean |",
        "|---|---|---|" + "---|" * (sum(1 for k in ("image", "text", "audio")
                                      if any(k in row for row in record["val_sweep"])) + 1),
    ]
    kinds = [k for k in ("image", "text", "audio") if any(k in row for row in record["val_sweep"])]
    for row in record["val_sweep"]:
        st = row["settings"]
        lines.append(f"| {st['num_inference_steps']} | {st['guidance_scale']:g} | {st['noise_level']} | "
                     + " | ".join(f"{row.get(k, float('nan')):.3f}" for k in kinds) + f" | {row['mean']:.3f} |")
    lines += ["", "## Results on TEST", "",
              "Fraction of generated images the pocket CLIP (zero-shot, canonical prompt ensemble, all "
              f"{len(record['class_names'])} classes as candidates) assigns to the intended class. The CLIP itself "
              f"assigns {record['clip_on_real_test_renders']:.3f} of the real TEST renders correctly.", "",
              "| condition | fraction correct | images | chance | worst classes | best classes |", "|---|---|---|---|---|---|"]
    for kind, sm in record["test"].items():
        pc = list(sm["per_class"].items())
        worst = ", ".join(f"{n} {v:.2f}" for n, v in pc[:4])
        best = ", ".join(f"{n} {v:.2f}" for n, v in pc[::-1][:4])
        lines.append(f"| {kind} | **{sm['fraction']:.3f}** | {sm['n']} | {sm['chance']:.3f} | {worst} | {best} |")
    if "audio" in record["test"]:
        k = record.get("test_samples", {}).get("audio", record["recipe"]["eval_seeds"])
        lines += ["", f"Audio: {record['test']['audio']['n'] // k} held-out test clips x {k} samples, through the "
                  f"audio encoder `{record.get('audio_encoder', '?')}` as installed when this was measured; "
                  "after retraining it, `python -m pretrain.pocket unclip-eval --data DATA` remeasures."]
    else:
        lines += ["", "Audio: the pocket audio encoder was not installed when this ran; "
                  "`python -m pretrain.pocket unclip-eval --data DATA` measures it once it is."]
    lines += ["", "## Figures", "", f"![losses]({rel}/unclip_losses.png)", ""]
    for kind in record["test"]:
        lines += [f"{kind}-conditioned samples, a row per class (red frame: the CLIP assigned it to another class):", "",
                  f"![{kind}]({rel}/unclip_samples_{kind}.png)", ""]
    lines += ["## Limits", "",
              f"- 64x64 pixels, trained on {record['data']['train_renders']} pictures: it redraws what it saw (close variations of training renders),",
              "  it does not compose new scenes; backgrounds are always white.",
              "- Judged by the same small CLIP it is conditioned on: a sample can satisfy that CLIP without looking",
              "  convincing to a person (see the grids).",
              "- Text and audio embeddings are off the image-embedding manifold (the modality gap); the class-mean",
              "  conditions and noise augmentation are what make them usable. In an earlier run (204 train renders), shifting sound",
              "  embeddings by the difference of the train audio and image means (a modality-gap fix) lowered VAL",
              "  audio from 0.19 to 0.14.",
              "- Sound is the weak link: the held-out sound embeddings themselves name the right class zero-shot",
              "  about a third of the time (encoders/weights/pocket/MODEL_CARD.md), which bounds audio-conditioned",
              "  samples. In that earlier run, 4x longer UNet training (700 -> 2800 steps) lifted TEST image / text",
              "  conditions from 0.11 / 0.13 to 0.27 / 0.38, audio only from 0.09 to 0.11 (both audio figures measured",
              "  before the audio-label fix of the evaluation, which moved the shipped figure by under a point).", ""]
    path.write_text("\n".join(lines))


def evaluate_shipped(data: Path, pipeline: Path | None = None, *, clip=None, audio_encoder="auto",
                     split: str = "test", kinds=("image", "text", "audio"), samples: int | None = None,
                     settings: SamplingSettings | None = None, update_record: bool = True, log=print) -> dict:
    """Measure a saved pocket unCLIP folder (default: the shipped one) on held-out conditions.

    Sampling settings default to the folder's recorded ``generation_defaults``; ``samples`` to the
    recipe's ``eval_seeds``. With ``update_record`` (and split "test") the folder's
    ``unclip_recipe.json``, model card and sample grids are updated with the new figures -- how the
    audio figures get in once the pocket audio encoder lands.
    """
    import json

    from adapters.unclip import load_pipeline

    from .prompts import CLASS_NAMES

    folder = Path(pipeline or DEFAULT_OUT).expanduser().resolve()
    record_path = folder / "unclip_recipe.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    note = json.loads((folder / "rebind_space.json").read_text())
    settings = settings or SamplingSettings(**note.get("generation_defaults", {}))
    seed = record["recipe"]["seed"] if record else 0
    samples = samples or (record["recipe"]["eval_seeds"] if record else 2)
    class_names = list(CLASS_NAMES)
    clip = load_clip(clip)
    if audio_encoder == "auto":
        audio_encoder = pocket_audio_encoder()
        if audio_encoder is None and "audio" in kinds:
            log("unclip-eval: no pocket audio encoder installed (encoders/weights/pocket/audio.safetensors); "
                "skipping audio conditions")
    gen = load_pipeline(str(folder), cache=False)
    gen.pipe.set_progress_bar_config(disable=True)
    torch.set_num_threads(record["recipe"]["threads"] if record else 2)
    results = evaluate_split(gen, clip, data, split, settings, class_names, samples, seed,
                             audio_encoder=audio_encoder, kinds=kinds)
    summary = summarize(results, class_names)
    for kind, s in summary.items():
        log(f"unclip-eval: {split} {kind}-conditioned: {s['fraction']:.3f} correct of {s['n']} "
            f"(chance {s['chance']:.3f}); worst: " + ", ".join(f"{n} {v:.2f}" for n, v in list(s["per_class"].items())[:3]))
    if update_record and record is not None and split == "test":
        figures = FIGURES if folder == DEFAULT_OUT.resolve() else folder / "figures"
        write_sample_grids(results, class_names, figures, data)
        record["test"].update(summary)
        for kind in summary:  # samples per condition differ between the training run and reruns
            record.setdefault("test_samples", {})[kind] = samples
        if audio_encoder is not None and "audio" in summary:
            record["audio_encoder"] = getattr(audio_encoder, "name", str(audio_encoder))
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        write_model_card(folder / "MODEL_CARD.md", record, figures, folder)
    return summary
