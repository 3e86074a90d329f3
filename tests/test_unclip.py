"""adapters.unclip on a tiny real Stable unCLIP pipeline (diffusers StableUnCLIPImg2ImgPipeline built
from configs, random weights) fed by the tiny ImageBind-layout encoders of space test-32."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import adapters
import adapters.unclip as unclip
import encoders
from adapters.unclip.configs import stable_unclip_pipeline
from audio_files import synth
from encoders.bridge import Bridge
from encoders.inputs import InputError
from unclip_helpers import STEPS, fingerprint, mean_abs_diff, pixels

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

GEN = dict(STEPS, guidance_scale=1.0, seed=0)


@pytest.fixture(scope="module")
def encoder():
    return encoders.create("imagebind_test", modalities=("audio", "text", "vision", "depth"), checkpoint=False)


@pytest.fixture(scope="module")
def gen():
    pipe = stable_unclip_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    return unclip.load_pipeline(pipe, space="test-32")


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sounds")
    paths = []
    for i, (f0, rate, fmt) in enumerate([(220.0, 16000, "WAV"), (660.0, 44100, "FLAC"), (1500.0, 22050, "OGG")]):
        p = folder / f"sound{i}.{fmt.lower()}"
        sf.write(p, synth(2.5, rate, 1, seed=i, f0=f0), rate, format=fmt,
                 subtype="VORBIS" if fmt == "OGG" else "PCM_16")
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------------ behaviour

def test_n_sounds_give_n_images_each(gen, encoder, sounds):
    images = unclip.from_audio(sounds, pipeline=gen, encoder=encoder, num_images_per_prompt=2, **GEN)
    assert len(images) == 2 * len(sounds)
    assert all(isinstance(im, Image.Image) and im.size == (32, 32) and im.mode == "RGB" for im in images)


def test_height_width_pass_through(gen, encoder, sounds):
    images = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, height=48, width=64, **GEN)
    assert len(images) == 1 and images[0].size == (64, 48)


def test_different_sounds_differ_and_equal_embeddings_repeat(gen, encoder, sounds):
    a = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **GEN)
    b = unclip.from_audio(sounds[1], pipeline=gen, encoder=encoder, **GEN)
    a_again = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **GEN)
    # the same recording as an array: equal embedding -> the identical image
    data, rate = sf.read(sounds[0], dtype="float32")
    a_array = unclip.from_audio((data, rate), pipeline=gen, encoder=encoder, **GEN)
    assert mean_abs_diff(a, a_again) == 0.0
    assert mean_abs_diff(a, a_array) == 0.0
    assert mean_abs_diff(a, b) > 1.0  # mean |difference| on the 0..255 pixel scale


def test_seed_changes_image(gen, encoder, sounds):
    a = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **GEN)
    other = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **dict(GEN, seed=1))
    gen_obj = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, generator=torch.Generator().manual_seed(0),
                                **STEPS, guidance_scale=1.0)
    assert mean_abs_diff(a, other) > 1.0
    assert mean_abs_diff(a, gen_obj) == 0.0
    with pytest.raises(InputError, match="either seed= or generator="):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, generator=torch.Generator(), **GEN)


def test_guidance_noise_level_and_prompt_pass_through(gen, encoder, sounds):
    base = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **GEN)
    cfg = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **dict(GEN, guidance_scale=5.0))
    noised = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, noise_level=500, **GEN)
    assert mean_abs_diff(base, cfg) > 0.5
    assert mean_abs_diff(base, noised) > 0.5
    with pytest.raises(ValueError, match="noise_level"):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, noise_level=1000, **GEN)
    with pytest.raises(InputError, match="output_type"):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, output_type="np", **GEN)


def test_pipeline_state_unchanged(gen, encoder, sounds):
    before = fingerprint(gen.pipe)
    unclip.from_audio(sounds[:2], pipeline=gen, encoder=encoder, noise_level=100, **dict(GEN, guidance_scale=3.0))
    assert fingerprint(gen.pipe) == before


def test_from_depth_text_image(gen, encoder, tmp_path):
    disparity = np.linspace(1, 60, 224 * 300, dtype=np.float32).reshape(224, 300)
    assert len(unclip.from_depth([disparity, disparity[::-1].copy()], pipeline=gen, encoder=encoder, **GEN)) == 2
    assert len(unclip.from_text(["a dog", "rain"], pipeline=gen, encoder=encoder, **GEN)) == 2
    png = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 20, 20)).save(png)
    assert len(unclip.from_image(png, pipeline=gen, encoder=encoder, **GEN)) == 1


# -------------------------------------------------------------------------------------- mixing

def test_mix_with_text_equals_explicit_weighted_mix(gen, encoder, sounds):
    mixed = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, mix_with=[("a beach at sunset", 0.3)], **GEN)
    sound = adapters.embed(sounds[0], "audio", encoder)
    text = adapters.embed("a beach at sunset", "text", encoder)
    explicit = unclip.from_embeddings(adapters.mix([(sound, 0.7), (text, 0.3)]), pipeline=gen, **GEN)
    plain = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, **GEN)
    assert mean_abs_diff(mixed, explicit) == 0.0
    assert mean_abs_diff(mixed, plain) > 0.5


def test_mix_with_image_and_embeddings_broadcast_over_sounds(gen, encoder, sounds, tmp_path):
    png = tmp_path / "green.png"
    Image.new("RGB", (64, 64), (10, 180, 30)).save(png)
    text = adapters.embed("birds", "text", encoder)
    images = unclip.from_audio(sounds, pipeline=gen, encoder=encoder, mix_with=[(str(png), 0.2), (text, 0.1)], **GEN)
    assert len(images) == len(sounds)


def test_mix_weight_errors(gen, encoder, sounds):
    with pytest.raises(InputError, match="sum to 1"):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, mix_with=[("a", 0.6), ("b", 0.4)], **GEN)
    with pytest.raises(InputError, match=r"\(item, weight\) pairs"):
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, mix_with=["a beach"], **GEN)
    with pytest.raises(InputError, match="text tower"):  # an audio-only encoder cannot embed the text part
        unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder["audio"], mix_with=[("a beach", 0.3)], **GEN)


# ----------------------------------------------------------------------------- spaces / dimension

def test_space_mismatch_gives_the_standard_message(gen):
    other = adapters.as_embeddings(torch.randn(2, 16), space="test-16", modality="audio")
    with pytest.raises(ValueError) as err:
        unclip.from_embeddings(other, pipeline=gen, **GEN)
    msg = str(err.value)
    expected = pytest.raises(ValueError)
    with expected as ref:
        encoders.check_same_space("test-16", "test-32", "audio embedding")
    assert msg == str(ref.value)
    assert "test-16" in msg and "test-32" in msg and "bridge" in msg


def test_raw_tensor_of_wrong_width_is_refused(gen):
    with pytest.raises(InputError, match="16-d but space test-32 is 32-d"):
        unclip.from_embeddings(torch.randn(1, 16), pipeline=gen, **GEN)


def test_bridge_carries_another_space_across(gen):
    g = torch.Generator().manual_seed(0)
    bridge = Bridge("test-16", "test-32", torch.randn(16, 32, generator=g), torch.zeros(16), torch.zeros(32))
    other = adapters.as_embeddings(torch.randn(2, 16, generator=g), space="test-16")
    assert len(unclip.from_embeddings(other, pipeline=gen, bridge=bridge, **GEN)) == 2


def test_space_inference(gen):
    with pytest.raises(InputError, match=r"registered 32-d spaces: [^)]*\btest-32\b"):
        unclip.UnclipGenerator(gen.pipe)
    assert unclip.UnclipGenerator(stable_unclip_pipeline("tiny", dim=768)).space.name == "openai-vit-l-14"
    assert unclip.UnclipGenerator(stable_unclip_pipeline("tiny", dim=1024)).space.name == "openclip-vit-h-14"
    with pytest.raises(InputError, match="takes 32-d embeddings but space test-16"):
        unclip.UnclipGenerator(gen.pipe, space="test-16")


# ---------------------------------------------------------------------------------------- norms

def test_norm_options_reach_the_pipeline(gen, encoder, sounds):
    emb = adapters.embed(sounds[0], "audio", encoder)
    assert gen.prepare(emb, norm="unit").norm(dim=-1).item() == pytest.approx(1.0, rel=1e-5)
    assert gen.prepare(emb, norm=7).norm(dim=-1).item() == pytest.approx(7.0, rel=1e-5)
    # identity normalizer (as the -h release): the documented fallback, 20
    assert gen.target_norm() == (unclip.FALLBACK_IMAGE_NORM, pytest.approx(gen.target_norm()[1]))
    assert gen.prepare(emb).norm(dim=-1).item() == pytest.approx(20.0, rel=1e-5)
    unit = unclip.from_embeddings(emb, pipeline=gen, norm="unit", **GEN)
    stats = unclip.from_embeddings(emb, pipeline=gen, norm="stats", **GEN)
    assert mean_abs_diff(unit, stats) > 0.5
    for bad in ("big", -1.0, 0, True, float("nan")):
        with pytest.raises(InputError, match="norm="):
            gen.prepare(emb, norm=bad)


def test_stats_norm_follows_normalizer_statistics_and_recorded_norm():
    g = torch.Generator().manual_seed(0)
    mean, std = 0.2 * torch.randn(32, generator=g), 0.5 + torch.rand(32, generator=g)
    pipe = stable_unclip_pipeline("tiny", normalizer_stats=(mean, std))
    emb = torch.nn.functional.normalize(torch.randn(3, 32, generator=g), dim=-1)
    expected = float((mean.pow(2).sum() + std.pow(2).sum()).sqrt())
    from_stats = unclip.UnclipGenerator(pipe, space="test-32")
    assert from_stats.target_norm()[1] == "normalizer statistics"
    assert torch.allclose(from_stats.prepare(emb, norm="image-stats").norm(dim=-1), torch.full((3,), expected))
    recorded = unclip.UnclipGenerator(pipe, space="test-32", image_embed_norm=12.5)
    assert torch.allclose(recorded.prepare(emb).norm(dim=-1), torch.full((3,), 12.5))


def test_cast_to_pipeline_dtype():
    pipe = stable_unclip_pipeline("tiny").to(torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    bf = unclip.load_pipeline(pipe, space="test-32")
    vectors = bf.prepare(torch.randn(2, 32))
    assert vectors.dtype == torch.bfloat16 and vectors.device.type == "cpu"
    images = unclip.from_embeddings(torch.randn(2, 32), pipeline=bf, **GEN)
    assert len(images) == 2 and images[0].size == (32, 32)


# ----------------------------------------------------------------------------------- bad inputs

def test_silent_audio_is_refused_clearly(gen, encoder, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.full(32000, 0.01, dtype=np.float32), 16000)  # only a DC offset
    for item in (silent, (np.zeros(16000, dtype=np.float32), 16000)):
        with pytest.raises(InputError, match="silent"):
            unclip.from_audio(item, pipeline=gen, encoder=encoder, **GEN)
    whisper = (1e-5 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)  # -100 dBFS
    with pytest.raises(InputError, match="-100 dBFS"):
        unclip.from_audio((whisper, 16000), pipeline=gen, encoder=encoder, **GEN)
    assert len(unclip.from_audio(silent, pipeline=gen, encoder=encoder, allow_silent=True, **GEN)) == 1


def test_unknown_and_wrong_file_types(gen, encoder, tmp_path):
    garbage = tmp_path / "sound.xyz"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="could not decode audio file"):
        unclip.from_audio(garbage, pipeline=gen, encoder=encoder, **GEN)
    png = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(png)
    with pytest.raises(InputError, match="is an image file, not audio; use adapters.unclip.from_image"):
        unclip.from_audio(png, pipeline=gen, encoder=encoder, **GEN)
    with pytest.raises(FileNotFoundError):
        unclip.from_audio(tmp_path / "missing.wav", pipeline=gen, encoder=encoder, **GEN)
    with pytest.raises(InputError, match="sample rate"):
        unclip.from_audio(np.ones(100, dtype=np.float32), pipeline=gen, encoder=encoder, **GEN)


# ------------------------------------------------------------------------- loading / packaging

def _tiny_trained_parts():
    """A UNet and VAE standing in for the pocket trainer's: built from the tiny configs."""
    pipe = stable_unclip_pipeline("tiny", seed=3)
    return pipe.unet, pipe.vae


def test_build_save_load_roundtrip(tmp_path, encoder, sounds):
    unet, vae = _tiny_trained_parts()
    g = torch.Generator().manual_seed(1)
    built = unclip.build_pipeline(unet, vae, "test-32", embedding_mean=0.1 * torch.randn(32, generator=g),
                                  embedding_std=torch.full((32,), 0.7), image_embed_norm=9.0)
    built.pipe.set_progress_bar_config(disable=True)
    # the stand-in text encoder gives exactly zero hidden states, whatever the prompt
    ids = built.pipe.tokenizer(["a dog barking", ""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert built.pipe.text_encoder(ids).last_hidden_state.abs().max().item() == 0.0
    folder = built.save(tmp_path / "pocket_like")
    note = json.loads((folder / "rebind_space.json").read_text())
    assert note == {"space": "test-32", "dim": 32, "kind": "stable-unclip", "image_embed_norm": 9.0,
                    "space_description": note["space_description"]}
    loaded = unclip.load_pipeline(folder)
    loaded.pipe.set_progress_bar_config(disable=True)
    assert loaded.space.name == "test-32" and loaded.image_embed_norm == 9.0
    assert loaded is unclip.load_pipeline(str(folder))  # cached
    a = unclip.from_audio(sounds[0], pipeline=built, encoder=encoder, **GEN)
    b = unclip.from_audio(sounds[0], pipeline=loaded, encoder=encoder, **GEN)
    assert mean_abs_diff(a, b) == 0.0
    # a pipeline object loaded by diffusers itself still finds its recorded space
    from diffusers import DiffusionPipeline
    raw = DiffusionPipeline.from_pretrained(str(folder))
    assert unclip.UnclipGenerator(raw).space.name == "test-32"
    with pytest.raises(InputError, match="contradicts the space 'test-32' recorded"):
        unclip.UnclipGenerator(raw, space="openai-vit-l-14")
    unclip.clear_cache()


def test_recorded_generation_defaults_fill_unset_arguments(tmp_path, encoder, sounds):
    unet, vae = _tiny_trained_parts()
    folder = unclip.build_pipeline(unet, vae, "test-32").save(tmp_path / "with_defaults")
    note = json.loads((folder / "rebind_space.json").read_text())
    note["generation_defaults"] = {"num_inference_steps": 2, "guidance_scale": 3.0, "noise_level": 50}
    (folder / "rebind_space.json").write_text(json.dumps(note))
    gen = unclip.load_pipeline(folder, cache=False)
    gen.pipe.set_progress_bar_config(disable=True)
    assert gen.generation_defaults == note["generation_defaults"]
    implicit = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, seed=0)
    explicit = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, seed=0, num_inference_steps=2,
                                 guidance_scale=3.0, noise_level=50)
    assert mean_abs_diff(implicit, explicit) == 0.0
    other = unclip.from_audio(sounds[0], pipeline=gen, encoder=encoder, seed=0, guidance_scale=1.0)
    assert mean_abs_diff(implicit, other) > 0  # an explicit argument still wins
    assert json.loads((gen.save(tmp_path / "resaved") / "rebind_space.json").read_text())[
        "generation_defaults"] == note["generation_defaults"]  # kept on re-save
    note["generation_defaults"] = {"guidance": 3.0}
    (folder / "rebind_space.json").write_text(json.dumps(note))
    with pytest.raises(InputError, match="unknown generation_defaults"):
        unclip.load_pipeline(folder, cache=False)


def test_build_pipeline_checks_the_unet(tmp_path):
    unet, vae = _tiny_trained_parts()
    with pytest.raises(InputError, match="projection_class_embeddings_input_dim=32"):
        unclip.build_pipeline(unet, vae, "test-16")
    with pytest.raises(InputError, match="embedding_std must be positive"):
        unclip.build_pipeline(unet, vae, "test-32", embedding_std=torch.zeros(32))


def test_default_pipeline_missing_and_installed(monkeypatch, tmp_path, encoder, sounds):
    import adapters.unclip.pipelines as pipelines

    monkeypatch.setattr(pipelines, "DEFAULT_PIPELINE_DIR", tmp_path / "pocket_unclip")
    with pytest.raises(FileNotFoundError, match="not installed yet") as err:
        unclip.load_pipeline()
    assert "pipeline=" in str(err.value)
    with pytest.raises(FileNotFoundError, match="not installed yet"):
        unclip.from_audio(sounds[0], encoder=encoder, **GEN)
    unet, vae = _tiny_trained_parts()
    unclip.build_pipeline(unet, vae, "test-32").save(tmp_path / "pocket_unclip")
    gen = unclip.load_pipeline()
    assert gen.space.name == "test-32" and gen.kind == "stable-unclip"
    gen.pipe.set_progress_bar_config(disable=True)
    assert len(unclip.from_audio(sounds[0], encoder=encoder, **GEN)) == 1  # pipeline=None -> the default
    unclip.clear_cache()


def test_hub_names_and_bad_paths_fail_clearly(tmp_path):
    with pytest.raises(OSError, match="download the model") as err:
        unclip.load_pipeline("stabilityai/stable-diffusion-2-1-unclip")
    assert "pass its path" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        unclip.load_pipeline(str(tmp_path / "no" / "such" / "folder"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        unclip.load_pipeline(tmp_path / "empty")
    with pytest.raises(TypeError, match="StableUnCLIPImg2ImgPipeline"):
        unclip.load_pipeline(object())


def test_import_stays_light():
    """diffusers / transformers are imported inside the functions that need them."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, adapters.unclip; heavy = [m for m in ('diffusers', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True)
