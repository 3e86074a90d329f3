"""Real-size Stable unCLIP geometry (random weights) on a CUDA device: the shapes of the -h and -l
releases, driven by a real-size ImageBind audio tower. Run with ``python -m pytest -m gpu``.

Same check as a script with timings: ``python benchmarks/unclip_real_size.py``.
"""
import gc

import numpy as np
import pytest
import torch

import adapters.unclip as unclip
import encoders
from adapters.unclip.configs import stable_unclip_pipeline
from audio_files import synth

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def audio_encoder():
    return encoders.create("imagebind_huge", modalities=("audio",), checkpoint=False, device="cuda")


def _generator(variant):
    pipe = stable_unclip_pipeline(variant, device="cuda", dtype=torch.float16)
    pipe.set_progress_bar_config(disable=True)
    return unclip.UnclipGenerator(pipe)  # space inferred from the embedding width


def _release(gen):
    del gen.pipe
    gc.collect()
    torch.cuda.empty_cache()


@pytest.mark.parametrize("variant,space,dim", [("h", "openclip-vit-h-14", 1024), ("l", "openai-vit-l-14", 768)])
def test_real_size_stable_unclip(variant, space, dim):
    gen = _generator(variant)
    try:
        assert gen.space.name == space and gen.dim == dim
        assert gen.pipe.unet.config.projection_class_embeddings_input_dim == 2 * dim
        assert gen.dtype == torch.float16 and gen.device.type == "cuda"
        images = unclip.from_embeddings(torch.randn(2, dim), pipeline=gen, num_inference_steps=2,
                                        guidance_scale=3.0, noise_level=100, seed=0)
        assert len(images) == 2 and all(im.size == (768, 768) for im in images)  # 96 latents x 8
        small = unclip.from_embeddings(torch.randn(1, dim), pipeline=gen, num_inference_steps=2, height=512,
                                       width=384, num_images_per_prompt=2, seed=0)
        assert [im.size for im in small] == [(384, 512)] * 2
    finally:
        _release(gen)


def test_real_size_audio_to_unclip_h_and_mismatch_with_l(audio_encoder):
    sounds = [(synth(3.0, 16000, 1, seed=i, f0=f)[:, 0], 16000) for i, f in enumerate((220.0, 880.0))]
    gen = _generator("h")
    try:
        images = unclip.from_audio(sounds, pipeline=gen, encoder=audio_encoder, num_inference_steps=2,
                                   guidance_scale=1.0, height=512, width=512, seed=0)
        assert len(images) == 2 and images[0].size == (512, 512)
        assert np.asarray(images[0]).shape == (512, 512, 3)
    finally:
        _release(gen)
    gen = _generator("l")
    try:
        with pytest.raises(ValueError, match="openclip-vit-h-14.*openai-vit-l-14.*bridge"):
            unclip.from_audio(sounds[0], pipeline=gen, encoder=audio_encoder, num_inference_steps=2)
    finally:
        _release(gen)
