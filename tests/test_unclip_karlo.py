"""The DALL-E 2 path: a tiny real Karlo ``UnCLIPPipeline`` (deprecated in diffusers, still shipped) whose
prior receives the audio embedding where it takes the prompt embedding."""
import numpy as np
import pytest
import torch

import adapters
import adapters.unclip as unclip
import encoders
from adapters.unclip.configs import karlo_pipeline
from audio_files import synth
from encoders.inputs import InputError
from unclip_helpers import fingerprint, mean_abs_diff

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

RATE = 16000
GEN = dict(num_inference_steps=2, super_res_num_inference_steps=2, seed=0)


@pytest.fixture(scope="module")
def encoder():
    return encoders.create("imagebind_test", modalities=("audio", "text"), checkpoint=False)


@pytest.fixture(scope="module")
def gen():
    pipe = karlo_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return unclip.load_pipeline(pipe, space="test-32")


@pytest.fixture(scope="module")
def sounds():
    return [(synth(2.0, RATE, 1, seed=i, f0=f0)[:, 0], RATE) for i, f0 in enumerate((220.0, 1500.0))]


def test_kind_space_and_stats_norm(gen):
    assert gen.kind == "karlo" and gen.space.name == "test-32" and gen.dim == 32
    norm, source = gen.target_norm()
    assert source == "text-encoder prompt embeddings"
    # the slot takes text embeddings: "stats" is the mean norm of the pipeline's own prompt embeddings
    tok, enc = gen.pipe.tokenizer, gen.pipe.text_encoder
    ids = tok(list(unclip.pipelines.REFERENCE_CAPTIONS), padding="max_length", max_length=77,
              truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        assert norm == pytest.approx(enc(ids).text_embeds.norm(dim=-1).mean().item(), rel=1e-5)


def test_prior_swap_n_images_equal_and_different(gen, encoder, sounds):
    images = unclip.from_audio(sounds, pipeline=gen, encoder=encoder, num_images_per_prompt=2, **GEN)
    assert len(images) == 4 and all(im.size == (32, 32) for im in images)
    a = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **GEN)
    a_again = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **GEN)
    b = unclip.from_audio(sounds[1], pipeline=gen, encoder=encoder, **GEN)
    assert mean_abs_diff(a, a_again) == 0.0
    assert mean_abs_diff(a, b) > 1.0


def test_swap_is_the_pipelines_own_text_path_with_the_embedding_in_the_pooled_slot(gen, encoder, sounds):
    """Feeding the pipeline's own text embedding through the swap reproduces its prompt path exactly."""
    pipe = gen.pipe
    tok = pipe.tokenizer(["a photo of a dog"], padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        own = pipe.text_encoder(tok.input_ids).text_embeds
    ref = pipe("a photo of a dog", prior_num_inference_steps=2, decoder_num_inference_steps=2,
               super_res_num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    swapped = unclip.from_embeddings(own, pipeline=gen, norm=own.norm().item(), prompt="a photo of a dog",
                                     **GEN)
    assert np.abs(np.asarray(ref[0], dtype=np.float32) - np.asarray(swapped[0], dtype=np.float32)).max() <= 1.0


def test_guidance_and_state(gen, encoder, sounds):
    before = fingerprint(gen.pipe)
    plain = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, guidance_scale=1.0,
                              prior_guidance_scale=1.0, **GEN)
    guided = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, guidance_scale=8.0, **GEN)
    assert mean_abs_diff(plain, guided) > 0.5
    assert fingerprint(gen.pipe) == before


def test_mixing_and_mismatch(gen, encoder, sounds):
    mixed = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, mix_with=[("thunder", 0.4)], **GEN)
    assert len(mixed) == 1
    with pytest.raises(ValueError, match="test-16.*test-32.*bridge"):
        unclip.from_embeddings(adapters.as_embeddings(torch.randn(1, 16), space="test-16"), pipeline=gen, **GEN)


def test_options_that_do_not_apply_are_refused(gen, encoder, sounds):
    with pytest.raises(InputError, match="noise_level applies to Stable unCLIP only"):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, noise_level=10, **GEN)
    with pytest.raises(InputError, match="32x32 images only"):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, height=64, **GEN)
    with pytest.raises(InputError, match="no negative prompt"):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, negative_prompt="blurry", **GEN)


def test_save_load_roundtrip(gen, tmp_path):
    folder = gen.save(tmp_path / "karlo_tiny")
    loaded = unclip.load_pipeline(folder, cache=False)
    loaded.pipe.set_progress_bar_config(disable=True)
    assert loaded.kind == "karlo" and loaded.space.name == "test-32"
    emb = torch.randn(1, 32, generator=torch.Generator().manual_seed(2))
    a = unclip.from_embeddings(emb, pipeline=gen, **GEN)
    b = unclip.from_embeddings(emb, pipeline=loaded, **GEN)
    assert mean_abs_diff(a, b) == 0.0
