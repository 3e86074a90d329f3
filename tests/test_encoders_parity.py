"""rebind's encoders reproduce the reference ImageBind implementation.

The reference (PyPI imagebind-unofficial: Meta's code, test-only) is built with random weights at the
``imagebind_test`` sizes, saved in its own key format, and loaded by rebind's checkpoint loader.
"""
import numpy as np
import pytest
import torch

import encoders
from audio_files import write_variety
from reference_imagebind import TINY_KWARGS, reference_data_module, reference_model_module, soundfile_load


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory):
    ref_mod = reference_model_module()
    torch.manual_seed(0)
    ref = ref_mod.ImageBindModel(**TINY_KWARGS).eval()
    with torch.no_grad():  # move every weight off its init value so the map is fully exercised
        for name, p in ref.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("ckpt") / "imagebind_tiny.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


@pytest.fixture(scope="module")
def rebind_model(reference_checkpoint):
    return encoders.create("imagebind_test", checkpoint=reference_checkpoint[1])


@pytest.fixture(scope="module")
def audio_paths(tmp_path_factory):
    return write_variety(tmp_path_factory.mktemp("audio"))


def max_diff(a, b):
    return (a - b).abs().max().item()


def test_audio_preprocessing_matches_reference(audio_paths, monkeypatch):
    data = reference_data_module()
    monkeypatch.setattr(data.torchaudio, "load", soundfile_load)
    for path in audio_paths:
        ref = data.load_and_transform_audio_data([str(path)], device="cpu")
        ours = encoders.AudioPreprocessor()([path])
        assert ours.shape == ref.shape == (1, 3, 1, 128, 204), path.name
        assert max_diff(ours, ref) <= 1e-5, path.name


def test_batched_preprocessing_equals_one_by_one(audio_paths):
    pre = encoders.AudioPreprocessor()
    together = pre(audio_paths)
    alone = torch.cat([pre([p]) for p in audio_paths])
    assert max_diff(together, alone) <= 1e-6


def test_audio_embeddings_match_reference(reference_checkpoint, rebind_model, audio_paths, monkeypatch):
    ref, _ = reference_checkpoint
    data = reference_data_module()
    monkeypatch.setattr(data.torchaudio, "load", soundfile_load)
    x = data.load_and_transform_audio_data([str(p) for p in audio_paths], device="cpu")
    with torch.no_grad():
        expected = ref({"audio": x})["audio"]
    got = encoders.embed_audio(audio_paths, model=rebind_model, output="scaled")
    assert got.shape == expected.shape == (len(audio_paths), 32)
    assert max_diff(got, expected) <= 1e-5
    unit = encoders.embed_audio(audio_paths, model=rebind_model)
    assert torch.allclose(unit, torch.nn.functional.normalize(expected, dim=-1), atol=1e-5)


@pytest.mark.parametrize("modality,shape", [("depth", (3, 1, 224, 224)), ("thermal", (3, 1, 224, 224)),
                                            ("imu", (3, 6, 2000)), ("vision", (3, 3, 224, 224))])
def test_tensor_modalities_match_reference(reference_checkpoint, rebind_model, modality, shape):
    ref, _ = reference_checkpoint
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref({modality: x})[modality]
        got = rebind_model[modality](x, output="scaled")
    assert max_diff(got, expected) <= 1e-5, modality


def test_text_matches_reference(reference_checkpoint, rebind_model):
    ref, _ = reference_checkpoint
    tokens = rebind_model["text"].preprocess(["a dog barking", "rain on a tin roof", "a train"])
    with torch.no_grad():
        expected = ref({"text": tokens})["text"]
        got = rebind_model["text"](tokens, output="scaled")
    assert max_diff(got, expected) <= 1e-5


def test_load_one_modality_reads_only_its_keys(reference_checkpoint):
    _, path = reference_checkpoint
    model = encoders.create("imagebind_test", modalities=("audio",), checkpoint=path)
    assert model.modalities == ("audio",)
    names = {n.split(".")[1] for n, _ in model.named_parameters()}
    assert names == {"audio"}


def test_safetensors_export_roundtrip(reference_checkpoint, rebind_model, tmp_path, audio_paths):
    _, path = reference_checkpoint
    written = encoders.convert_imagebind(path, tmp_path, modalities=("audio", "depth"),
                                         config="imagebind_test", progress=False)
    assert sorted(p.name for p in written) == ["audio.safetensors", "depth.safetensors"]
    again = encoders.create("imagebind_test", modalities=("audio", "depth"), checkpoint=tmp_path)
    a = encoders.embed_audio(audio_paths[:2], model=again)
    b = encoders.embed_audio(audio_paths[:2], model=rebind_model)
    assert torch.equal(a, b)
