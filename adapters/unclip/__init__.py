"""adapters.unclip: paint from sound (or depth) with diffusion models conditioned on CLIP embeddings.

ImageBind's trick (paper section 4.4): an audio encoder trained to match a frozen CLIP image tower
lands in that CLIP image space, so a model conditioned on CLIP image embeddings draws from sounds
when handed the audio embedding instead. No retraining.

    import adapters.unclip, encoders, torch
    enc = encoders.create("imagebind_huge", checkpoint="imagebind_huge.pth")     # openclip-vit-h-14
    gen = adapters.unclip.load_pipeline("/models/stable-diffusion-2-1-unclip",   # a local folder
                                        device="cuda", dtype=torch.float16)
    images = adapters.unclip.from_audio(["dog.wav", "rain.ogg"], pipeline=gen, encoder=enc,
                                        mix_with=[("a beach at sunset", 0.3)],
                                        num_inference_steps=30, noise_level=0, seed=0)

Pipelines: Stable unCLIP (``StableUnCLIPImg2ImgPipeline``, the embedding is its ``image_embeds``;
-h = openclip-vit-h-14 1024-d, ImageBind's own space; -small/-l = openai-vit-l-14 768-d), Karlo /
DALL-E 2 (``UnCLIPPipeline``, deprecated in diffusers but working: the embedding replaces the prompt
embedding at the prior's input), and rebind's pocket unCLIP (``load_pipeline()`` with no argument,
once it is installed in ``adapters/weights/pocket_unclip``).

Norms (``norm=``): rebind embeddings are unit vectors, CLIP image embeddings are not. The default
"stats" rescales to the norm of what the pipeline was trained on (recorded norm > normalizer
statistics > Karlo's own prompt-embedding norms > 20 for the identity-normalizer -h release);
"unit" and fixed numbers are there to compare. See ``UnclipGenerator.target_norm``.
"""
from .api import apply_mix, from_audio, from_depth, from_embeddings, from_image, from_text
from .pipelines import (DEFAULT_PIPELINE_DIR, FALLBACK_IMAGE_NORM, UnclipGenerator, build_pipeline,
                        clear_cache, infer_space, load_pipeline)

__all__ = [
    "from_audio", "from_depth", "from_text", "from_image", "from_embeddings", "apply_mix",
    "load_pipeline", "build_pipeline", "UnclipGenerator", "infer_space", "clear_cache",
    "DEFAULT_PIPELINE_DIR", "FALLBACK_IMAGE_NORM",
]
