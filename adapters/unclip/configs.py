"""Component configs for unCLIP pipelines built from scratch (random weights).

Three uses: the tests build ``tiny`` pipelines that run end to end on CPU in about a second; the GPU
shape check builds the ``h`` / ``l`` real-size Stable unCLIP geometry (stabilityai
stable-diffusion-2-1-unclip and -unclip-small) with random weights; ``build_pipeline`` (the pocket
packager) uses the stand-ins below for the components diffusers requires but rebind never uses.

Real-size numbers come from Stability-AI/stablediffusion ``configs/stable-diffusion/
v2-1-stable-unclip-{h,l}-inference.yaml`` (model_channels 320, channel_mult 1,2,4,4, 64-channel
heads, context_dim 1024, adm_in_channels 2048 / 1536, VAE ch 128 mult 1,2,4,4, scale 0.18215,
embedding noise schedule squaredcos_cap_v2 over 1000 steps, v-prediction on a scaled-linear
0.00085..0.012 schedule) and the OpenCLIP ViT-H/14 and OpenAI ViT-L/14 tower sizes.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def _seeded(seed: int):
    """Deterministic random init without touching the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ------------------------------------------------------------------------------------ stand-ins

def standin_tokenizer(max_length: int = 77):
    """An offline CLIP tokenizer with a 3-token vocabulary (every word becomes <unk>).

    Stable unCLIP always tokenizes its prompt, Karlo tokenizes "" for classifier-free guidance;
    neither needs a real vocabulary when rebind supplies the embeddings.
    """
    from transformers import CLIPTokenizer

    return CLIPTokenizer(model_max_length=max_length)


def standin_text_encoder(hidden_size: int, seed: int = 0, zero_output: bool = True,
                         with_projection: bool = False, projection_dim: int | None = None):
    """A 1-layer CLIP text model of width ``hidden_size``.

    With ``zero_output`` its final LayerNorm has zero weight and bias, so its hidden states are
    exactly 0 for every prompt: a UNet trained with ``encoder_hidden_states = 0`` sees at inference
    exactly what it saw in training, whatever the prompt.
    """
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    heads = 4 if hidden_size % 4 == 0 else 1
    cfg = CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=2, hidden_size=hidden_size,
                         projection_dim=projection_dim or hidden_size, intermediate_size=37,
                         num_attention_heads=heads, num_hidden_layers=1, vocab_size=1000,
                         max_position_embeddings=77)
    with _seeded(seed):
        model = (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(cfg).eval()
    if zero_output:
        final = [m for name, m in model.named_modules() if name.endswith("final_layer_norm")]
        if len(final) != 1:
            raise RuntimeError(f"expected one final_layer_norm in {type(model).__name__}, found {len(final)}")
        with torch.no_grad():
            final[0].weight.zero_()
            final[0].bias.zero_()
    return model


def standin_image_encoder(projection_dim: int, seed: int = 0):
    """A 1-layer CLIP vision model; Stable unCLIP reads its dtype even when given ``image_embeds``.

    Its embeddings are meaningless: never pass ``image=`` to a pipeline built with it; embed images
    with a rebind encoder (``adapters.unclip.from_image``).
    """
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(hidden_size=32, projection_dim=projection_dim, num_hidden_layers=1,
                           num_attention_heads=4, image_size=32, intermediate_size=37, patch_size=8)
    with _seeded(seed):
        model = CLIPVisionModelWithProjection(cfg).eval()
    return model, CLIPImageProcessor(crop_size=32, size=32)


def sd2_sampling_scheduler():
    """DDIM on SD 2.x's training schedule (scaled-linear 0.00085..0.012, v-prediction)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                         beta_end=0.012, prediction_type="v_prediction", set_alpha_to_one=False,
                         steps_offset=1, clip_sample=False, timestep_spacing="leading")


def embedding_noising_scheduler():
    """The schedule Stable unCLIP noises its conditioning embedding with (``noise_level``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")


# --------------------------------------------------------------------------------- Stable unCLIP

STABLE_UNCLIP = {
    # variant: (embedding dim, UNet kwargs, VAE kwargs, text encoder kwargs, image encoder kwargs)
    "tiny": dict(
        dim=32,
        unet=dict(sample_size=16, block_out_channels=(32, 64), attention_head_dim=(2, 4),
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                  cross_attention_dim=32, norm_num_groups=32),
        vae=dict(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=32,
                 layers_per_block=1, sample_size=32),
        text=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                  projection_dim=32),
        vision=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=1,
                    image_size=32, patch_size=8),
    ),
    "h": dict(  # stabilityai/stable-diffusion-2-1-unclip
        dim=1024,
        unet=dict(sample_size=96, block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, layers_per_block=2,
                  cross_attention_dim=1024),
        vae=dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                 up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2,
                 sample_size=768, scaling_factor=0.18215),
        # OpenCLIP ViT-H/14 text tower, penultimate layer (SD 2.x drops the last of 24 blocks)
        text=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                  projection_dim=512, hidden_act="gelu"),
        # OpenCLIP ViT-H/14 image tower
        vision=dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32,
                    image_size=224, patch_size=14, hidden_act="gelu"),
    ),
    "l": dict(  # stabilityai/stable-diffusion-2-1-unclip-small
        dim=768,
        unet=dict(sample_size=96, block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, layers_per_block=2,
                  cross_attention_dim=1024),
        vae=dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                 up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2,
                 sample_size=768, scaling_factor=0.18215),
        text=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                  projection_dim=512, hidden_act="gelu"),
        # OpenAI CLIP ViT-L/14 image tower
        vision=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                    image_size=224, patch_size=14, hidden_act="quick_gelu"),
    ),
}


def stable_unclip_pipeline(variant: str = "tiny", seed: int = 0, dim: int | None = None,
                           normalizer_stats: "tuple[Any, Any] | None" = None, device: Any = None,
                           dtype: torch.dtype | None = None):
    """A ``StableUnCLIPImg2ImgPipeline`` with random weights in the geometry of ``variant``.

    variant: "tiny" (32-d, 16x16 latents, 32 px images by default), "h" (1024-d, 768 px) or "l"
    (768-d, 768 px). ``dim`` overrides the embedding width of the tiny variant. ``normalizer_stats``
    (mean, std) fills the embedding normalizer (default: identity, as in the -h release).
    device / dtype: each component is built on ``device`` and cast to ``dtype`` as soon as it exists,
    so a real-size build never holds more than one float32 component at a time (~3.5 GB, the UNet).
    """
    from diffusers import AutoencoderKL, StableUnCLIPImg2ImgPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import (CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    if variant not in STABLE_UNCLIP:
        raise ValueError(f"unknown Stable unCLIP variant {variant!r}; expected one of {sorted(STABLE_UNCLIP)}")
    spec = STABLE_UNCLIP[variant]
    emb = dim or spec["dim"]
    def place(module):  # built on `device` already (torch.device context below)
        return (module if dtype is None else module.to(dtype=dtype)).eval()

    with _seeded(seed), torch.device(device or "cpu"):
        unet = place(UNet2DConditionModel(in_channels=4, out_channels=4, class_embed_type="projection",
                                          projection_class_embeddings_input_dim=2 * emb, use_linear_projection=True,
                                          upcast_attention=True, **spec["unet"]))
        vae = place(AutoencoderKL(in_channels=3, out_channels=3, **spec["vae"]))
        text = place(CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=2,
                                                  vocab_size=49408 if variant != "tiny" else 1000,
                                                  max_position_embeddings=77, **spec["text"])))
        vision = place(CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=emb, **spec["vision"])))
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=emb)
    if normalizer_stats is not None:
        mean, std = (torch.as_tensor(s, dtype=torch.float32).reshape(1, emb) for s in normalizer_stats)
        with torch.no_grad():
            normalizer.mean.copy_(mean)
            normalizer.std.copy_(std)
    normalizer = normalizer.to(device or "cpu", dtype)  # its own .to(device, dtype) signature
    size = spec["vision"]["image_size"]
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=size, size=size), image_encoder=vision,
        image_normalizer=normalizer, image_noising_scheduler=embedding_noising_scheduler(),
        tokenizer=standin_tokenizer(), text_encoder=text, unet=unet, scheduler=sd2_sampling_scheduler(), vae=vae)


# ------------------------------------------------------------------------------ Karlo (UnCLIPPipeline)

def karlo_pipeline(variant: str = "tiny", seed: int = 0, dim: int = 32):
    """A tiny ``UnCLIPPipeline`` (DALL-E 2 / Karlo layout) with random weights, after diffusers' tests.

    Prior over ``dim``-d embeddings, 16 px decoder, 32 px super-resolution. Only "tiny" exists: the
    real Karlo is deprecated in diffusers and not part of the GPU shape check.
    """
    from diffusers import PriorTransformer, UnCLIPPipeline, UnCLIPScheduler, UNet2DConditionModel, UNet2DModel
    from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel

    if variant != "tiny":
        raise ValueError("only the 'tiny' Karlo variant is built from configs; load a real Karlo folder "
                         "with adapters.unclip.load_pipeline(folder)")
    cross = 64
    with _seeded(seed):
        text = standin_text_encoder(dim, seed=seed, zero_output=False, with_projection=True)
        prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=dim, num_layers=1)
        text_proj = UnCLIPTextProjModel(clip_embeddings_dim=dim, time_embed_dim=128, cross_attention_dim=cross)
        decoder = UNet2DConditionModel(
            sample_size=16, in_channels=3, out_channels=6,
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
            cross_attention_dim=cross, attention_head_dim=16, resnet_time_scale_shift="scale_shift",
            class_embed_type="identity")
        sr = dict(sample_size=32, layers_per_block=1, down_block_types=("ResnetDownsampleBlock2D",) * 2,
                  up_block_types=("ResnetUpsampleBlock2D",) * 2, block_out_channels=(32, 64),
                  in_channels=6, out_channels=3)
        sr_first, sr_last = UNet2DModel(**sr), UNet2DModel(**sr)
    return UnCLIPPipeline(
        prior=prior.eval(), decoder=decoder.eval(), text_proj=text_proj.eval(), text_encoder=text,
        tokenizer=standin_tokenizer(), super_res_first=sr_first.eval(), super_res_last=sr_last.eval(),
        prior_scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                        num_train_timesteps=1000, clip_sample_range=5.0),
        decoder_scheduler=UnCLIPScheduler(variance_type="learned_range", prediction_type="epsilon",
                                          num_train_timesteps=1000),
        super_res_scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon",
                                            num_train_timesteps=1000))
