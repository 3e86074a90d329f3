"""encoders: registry, factory, inputs users pass, and the errors they get."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import encoders
from audio_files import synth


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return encoders.create("imagebind_test", checkpoint=False)


def test_registry_lists_huge_and_its_tiny_twin():
    assert {"imagebind_huge", "imagebind_test"} <= set(encoders.list_models())
    huge = encoders.get_config("imagebind_huge")
    assert huge["space"] == "openclip-vit-h-14"
    assert set(huge["modalities"]) == {"vision", "text", "audio", "depth", "thermal", "imu"}
    assert encoders.get_space(huge["space"]).dim == 1024


def test_huge_audio_alone_builds_only_the_audio_tower():
    model = encoders.create("imagebind_huge", modalities=("audio",), checkpoint=False)
    assert model.modalities == ("audio",)
    params = sum(p.numel() for p in model.parameters())
    assert 80e6 < params < 90e6  # the ViT-B audio trunk, not the 630M vision tower


def test_output_kinds(tiny, rng):
    x = encoders.AudioPreprocessor()((rng.standard_normal(40000).astype(np.float32) * 0.1, 16000))
    enc = tiny["audio"]
    with torch.no_grad():
        unit, scaled, raw = (enc(x, output=o) for o in ("unit", "scaled", "raw"))
    assert torch.allclose(unit.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert torch.allclose(torch.nn.functional.normalize(scaled, dim=-1), unit, atol=1e-5)
    # clips are averaged after scaling: the mean of 3 vectors of norm 20 has norm <= 20
    assert 0 < scaled.norm() <= 20.0 + 1e-4
    with torch.no_grad():  # raw = the head output before normalization, averaged over the 3 clips
        per_clip = enc.encode(x.flatten(0, 1))
    assert torch.allclose(raw, per_clip.mean(0, keepdim=True), atol=1e-5)
    assert abs(raw.norm().item() - 1.0) > 1e-2


def test_inputs_any_rate_channels_and_length_give_one_row_each(tiny, tmp_path):
    paths = []
    for i, (sec, rate, ch) in enumerate([(0.01, 8000, 1), (0.7, 11025, 2), (12.0, 32000, 1)]):
        p = tmp_path / f"a{i}.wav"
        sf.write(p, synth(sec, rate, ch, seed=i), rate)
        paths.append(p)
    arr = synth(1.5, 22050, 2, seed=9)  # [T, C] as soundfile returns it
    out = encoders.embed_audio(paths + [(arr, 22050), (torch.from_numpy(arr.T.copy()), 22050)], model=tiny)
    assert out.shape == (5, 32)
    # [T, C] and [C, T] layouts of the same samples are the same input
    assert torch.allclose(out[3], out[4], atol=1e-6)


def test_stereo_file_equals_its_array(tiny, tmp_path):
    arr = synth(3.0, 44100, 2, seed=3)
    p = tmp_path / "s.wav"
    sf.write(p, arr, 44100, subtype="FLOAT")
    a = encoders.embed_audio(p, model=tiny)
    b = encoders.embed_audio(arr, model=tiny, sample_rate=44100)
    assert torch.allclose(a, b, atol=1e-6)


def test_batching_does_not_change_results(tiny, rng):
    clips = [(rng.standard_normal(16000 * (i + 1)).astype(np.float32) * 0.1, 16000) for i in range(5)]
    a = encoders.embed_audio(clips, model=tiny, batch_size=2)
    b = encoders.embed_audio(clips, model=tiny, batch_size=5)
    assert torch.allclose(a, b, atol=1e-5)


def test_bfloat16_encoder_stays_close(tiny, rng):
    x = encoders.AudioPreprocessor()((rng.standard_normal(48000).astype(np.float32) * 0.1, 16000))
    enc16 = encoders.create("imagebind_test", modalities=("audio",), checkpoint=False, dtype=torch.bfloat16)
    enc16["audio"].load_state_dict({k: v.to(torch.bfloat16) for k, v in tiny["audio"].state_dict().items()})
    with torch.no_grad():
        ref = tiny["audio"](x)
        low = enc16["audio"](x)
    assert low.dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(ref, low.float()).item() > 0.99


def test_int8_path_is_close_to_fp32(tiny, rng):
    x = encoders.AudioPreprocessor()((rng.standard_normal(48000).astype(np.float32) * 0.1, 16000))
    q = encoders.quantize_int8(tiny["audio"])
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(tiny["audio"](x), q(x)).item()
    assert cos > 0.99
    assert "quantized.dynamic" in type(q.trunk.blocks[0].mlp.fc1).__module__


def test_depth_and_imu_inputs(tiny, tmp_path):
    disparity = np.full((60, 80), 20.0, np.float32)
    disparity[10:20, 10:20] = np.inf  # unknown pixels, as Middlebury marks them
    np.save(tmp_path / "d.npy", disparity)
    a = encoders.embed_depth(tmp_path / "d.npy", model=tiny)
    depth_m = np.full((60, 80), 2.0, np.float32)
    b = encoders.embed_depth(depth_m, model=tiny, input="depth", focal_length=533.3)  # f*b/z = 20
    assert a.shape == b.shape == (1, 32)
    imu = encoders.embed_imu([np.zeros((6, 500)), np.ones((3000, 6))], model=tiny, sample_rate=100)
    assert imu.shape == (2, 32)


# ------------------------------------------------------------------------------------ bad input

def test_missing_audio_file_names_it(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        encoders.embed_audio(tmp_path / "nope.wav", model=tiny)


def test_corrupt_audio_file_names_it_and_the_fix(tiny, tmp_path):
    p = tmp_path / "broken.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    with pytest.raises(encoders.InputError, match=r"broken\.wav.*ffmpeg"):
        encoders.embed_audio(p, model=tiny)


def test_empty_file_and_zero_length_audio(tiny, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(encoders.InputError, match="empty"):
        encoders.embed_audio(empty, model=tiny)
    with pytest.raises(encoders.InputError, match="no samples"):
        encoders.embed_audio(np.zeros(0, np.float32), model=tiny, sample_rate=16000)


def test_nan_inf_samples_are_refused(tiny):
    x = np.zeros(16000, np.float32)
    x[5] = np.nan
    with pytest.raises(encoders.InputError, match="NaN or inf"):
        encoders.embed_audio(x, model=tiny, sample_rate=16000)


def test_array_without_rate_and_bad_shapes(tiny):
    with pytest.raises(encoders.InputError, match="sample_rate"):
        encoders.embed_audio(np.zeros(16000, np.float32), model=tiny)
    with pytest.raises(encoders.InputError, match="3 dimensions"):
        encoders.embed_audio(np.zeros((2, 2, 16000), np.float32), model=tiny, sample_rate=16000)
    with pytest.raises(ValueError, match=r"expects a tensor of 4 dims"):
        tiny["audio"](torch.zeros(128, 204))
    with pytest.raises(ValueError, match=r"stem expects inputs of shape \[B, 1, 128, 204\]"):
        tiny["audio"](torch.zeros(1, 1, 64, 204))
    with pytest.raises(encoders.InputError, match=r"expected \[6, T\]"):
        encoders.embed_imu(np.zeros((5, 100)), model=tiny)


def test_checkpoint_of_another_model_lists_the_mismatch(tmp_path):
    huge_audio = encoders.create("imagebind_huge", modalities=("audio",), checkpoint=False)
    path = tmp_path / "other"
    encoders.save_modalities(huge_audio, path)
    with pytest.raises(encoders.CheckpointError) as e:
        encoders.create("imagebind_test", modalities=("audio",), checkpoint=path)
    msg = str(e.value)
    assert "shape mismatches" in msg and "stem.proj.weight" in msg and "another model" in msg


def test_checkpoint_missing_a_modality_and_junk_keys(tmp_path):
    torch.save({"audio.foo": torch.zeros(3)}, tmp_path / "junk.pt")
    with pytest.raises(encoders.CheckpointError, match=r"(?s)missing keys.*unexpected keys \(1\): foo"):
        encoders.create("imagebind_test", modalities=("audio",), checkpoint=tmp_path / "junk.pt")
    with pytest.raises(encoders.CheckpointError, match="holds no weights"):
        encoders.create("imagebind_test", modalities=("depth",), checkpoint=tmp_path / "junk.pt")


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"audio.x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(encoders.CheckpointError, match="weights_only=True"):
        encoders.create("imagebind_test", modalities=("audio",), checkpoint=tmp_path / "evil.pt")


def test_config_errors_name_the_field(tmp_path):
    cfg = encoders.get_config("imagebind_test")
    cfg["modalities"]["audio"]["widht"] = 64
    with pytest.raises(encoders.ConfigError, match=r"modalities\.audio: unknown key\(s\) \['widht'\]"):
        encoders.register_config(cfg, name="typo")
    cfg = encoders.get_config("imagebind_test")
    cfg["modalities"]["audio"]["layers"] = "two"
    with pytest.raises(encoders.ConfigError, match=r"audio\.layers: expected an integer"):
        encoders.register_config(cfg, name="bad")
    cfg = encoders.get_config("imagebind_test")
    cfg["space"] = "nowhere"
    with pytest.raises(encoders.ConfigError, match="unknown CLIP space 'nowhere'"):
        encoders.register_config(cfg, name="bad2")
    with pytest.raises(KeyError, match="unknown encoder config 'imagebind_hgue'"):
        encoders.create("imagebind_hgue")


def test_register_json_config_and_use_it(tmp_path):
    cfg = encoders.get_config("imagebind_test")
    cfg["modalities"] = {"audio": cfg["modalities"]["audio"]}
    cfg["modalities"]["audio"]["layers"] = 1
    path = tmp_path / "one_layer_audio.json"
    path.write_text(json.dumps(cfg))
    name = encoders.register_config(path)
    model = encoders.create(name, checkpoint=False)
    assert name == "one_layer_audio" and len(model["audio"].trunk.blocks) == 1


def test_space_mismatch_message_names_both_and_the_bridge():
    with pytest.raises(ValueError) as e:
        encoders.check_same_space("openclip-vit-h-14", "openai-vit-b-32", "audio embedding")
    msg = str(e.value)
    assert "openclip-vit-h-14 (1024-d)" in msg and "openai-vit-b-32 (512-d)" in msg and "bridge" in msg


def test_saved_encoder_of_a_custom_space_loads_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    cfg = encoders.get_config("imagebind_test")
    cfg["modalities"] = {"depth": cfg["modalities"]["depth"]}
    cfg["space"] = "my-lab-clip-32"
    encoders.register_space(encoders.ClipSpace("my-lab-clip-32", 32, description="a lab's own CLIP"))
    encoders.save_modalities(encoders.create(cfg, checkpoint=False), tmp_path)
    code = f"import encoders; m = encoders.create({str(tmp_path)!r}); print(m.space, m.space.description)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "my-lab-clip-32 (32-d) a lab's own CLIP" in out
