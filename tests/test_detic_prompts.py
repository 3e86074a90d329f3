"""adapters.detic.from_audio & co. with tiny real encoders and rebind's own detector."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from PIL import Image

import adapters
import adapters.detic as detic
from detic_helpers import random_image, tiny_detector, tiny_encoders, write_sounds
from encoders.bridge import Bridge
from encoders.inputs import InputError


@pytest.fixture(scope="module")
def enc():
    return tiny_encoders()


@pytest.fixture
def sounds(tmp_path):
    return write_sounds(tmp_path)


@pytest.fixture(scope="module")
def shared_model():
    return tiny_detector()


@pytest.fixture
def model(shared_model):
    """One detector for the module: every test must leave it as it found it (no classes)."""
    assert shared_model.num_classes == 0
    yield shared_model
    assert shared_model.num_classes == 0 and shared_model.classifier.class_embeddings.shape == (32, 1)


def test_n_sounds_become_n_classes_named_after_the_files(enc, sounds, model):
    expected = adapters.embed(sounds, "audio", encoder=enc).vectors
    with detic.from_audio(sounds, detector=model, encoder=enc, threshold=0.0) as prompted:
        assert prompted.class_names == ["dog", "doorbell", "rain"] == model.class_names
        matrix = model.classifier.class_embeddings
        assert matrix.shape == (32, 4)
        assert torch.allclose(matrix[:, :3].T, F.normalize(expected, dim=-1), atol=1e-5)
        found = prompted.detect(random_image())
        assert len(found) > 0 and int(found.labels.max()) < 3
        assert set(found.names) <= {"dog", "doorbell", "rain"}
    assert model.num_classes == 0


def test_names_and_arrays(enc, sounds, model):
    data, rate = sf.read(sounds[0], dtype="float32")
    prompted = detic.from_audio([(data, rate), sounds[1]], detector=model, encoder=enc, names=["bark", "ding"])
    assert prompted.class_names == ["bark", "ding"] == model.class_names
    prompted.restore()
    with pytest.raises(InputError, match="3 names for 2"):
        detic.from_audio(sounds[:2], detector=model, encoder=enc, names=["a", "b", "c"])


def test_silent_audio_is_refused_by_name(enc, tmp_path, sounds, model):
    silent = tmp_path / "quiet_room.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="quiet_room.wav.*silent"):
        detic.from_audio([sounds[0], silent], detector=model, encoder=enc)


def test_unknown_file_types_are_refused(enc, tmp_path, model):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a sound")
    with pytest.raises(InputError, match=r"notes.txt.*unknown audio file type '\.txt'"):
        detic.from_audio(notes, detector=model, encoder=enc)
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF but not really a wave file")
    with pytest.raises(InputError, match="could not decode audio file"):
        detic.from_audio(fake, detector=model, encoder=enc)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, True, "0.9", float("nan")])
def test_threshold_outside_0_1_is_a_value_error_naming_it(enc, sounds, threshold, model):
    with pytest.raises(ValueError, match="threshold"):
        detic.from_audio(sounds[0], detector=model, encoder=enc, threshold=threshold)
    with model.prompted(torch.randn(2, 32)) as prompted:
        with pytest.raises(ValueError, match="threshold"):
            model.detect(random_image(), threshold=threshold)
        with pytest.raises(ValueError, match="threshold"):
            prompted.detect(random_image(), threshold=threshold)


def test_audio_from_another_space_is_refused_with_both_spaces_and_a_bridge(enc, sounds):
    model16 = tiny_detector(space="test-16")
    with pytest.raises(ValueError) as err:
        detic.from_audio(sounds, detector=model16, encoder=enc)
    message = str(err.value)
    assert "test-32 (32-d)" in message and "test-16 (16-d)" in message and "bridge" in message
    assert model16.num_classes == 0


def test_a_bridge_carries_audio_into_the_detector_space(enc, sounds):
    torch.manual_seed(0)
    bridge = Bridge("test-32", "test-16", torch.randn(32, 16), torch.zeros(32), torch.zeros(16))
    model16 = tiny_detector(space="test-16")
    expected = bridge(adapters.embed(sounds, "audio", encoder=enc).vectors)
    with detic.from_audio(sounds, detector=model16, encoder=enc, bridge=bridge):
        assert torch.allclose(model16.get_class_embeddings(), expected, atol=1e-5)


def test_from_embeddings_checks_the_dimension(model):
    with pytest.raises(InputError, match=r"test-32 \(32-d\).*\[C, 32\].*bridge"):
        detic.from_embeddings(torch.randn(2, 16), detector=model)
    with pytest.raises(ValueError, match="test-16.*test-32.*bridge"):
        detic.from_embeddings(torch.randn(2, 16), detector=model, space="test-16")
    with detic.from_embeddings(np.random.rand(4, 32), detector=model, names=list("abcd")) as prompted:
        assert model.num_classes == 4 and prompted.class_names == list("abcd")


def test_from_text_and_from_depth(enc, model):
    with detic.from_text(["a dog", "a red ball"], detector=model, encoder=enc) as prompted:
        assert prompted.class_names == ["a dog", "a red ball"]
        expected = adapters.embed(["a dog", "a red ball"], "text", encoder=enc).vectors
        assert torch.allclose(model.get_class_embeddings(), F.normalize(expected, dim=-1), atol=1e-5)
    rng = np.random.default_rng(0)
    maps = [rng.random((60, 80)).astype(np.float32) * 40 for _ in range(2)]
    with detic.from_depth(maps, detector=model, encoder=enc, names=["near", "far"]) as prompted:
        assert model.class_names == ["near", "far"] and model.num_classes == 2


def test_mixed_embeddings_prompt_a_detector(enc, sounds, model):
    sound = adapters.embed(sounds[:1], "audio", encoder=enc)
    text = adapters.embed(["a beach"], "text", encoder=enc)
    mixed = adapters.mix([(sound, 0.7), (text, 0.3)])
    with detic.from_embeddings(mixed, detector=model) as prompted:
        assert len(prompted.class_names) == 1 and "dog" in prompted.class_names[0]


@pytest.fixture
def prompted(enc, sounds, model):
    with detic.from_audio(sounds, detector=model, encoder=enc, threshold=0.0) as p:
        yield p


@pytest.mark.parametrize("bad", [np.zeros((0, 10, 3), np.uint8), np.zeros((1, 1, 3), np.uint8),
                                 Image.new("RGB", (1, 1)), np.zeros((4, 4, 4, 3), np.uint8)])
def test_empty_tiny_or_malformed_images_are_refused(prompted, bad):
    with pytest.raises(InputError, match="image"):
        prompted.detect(bad)


def test_zero_byte_and_missing_image_files(prompted, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        prompted.detect(empty)
    with pytest.raises(FileNotFoundError):
        prompted.detect(tmp_path / "nowhere.png")


def test_grayscale_rgba_and_paths_are_handled(prompted, tmp_path):
    rgb = random_image(80, 100)
    gray = rgb.mean(axis=2).astype(np.uint8)
    for image in (gray, Image.fromarray(gray), Image.fromarray(gray).convert("I;16")):
        found = prompted.detect(image)
        assert found.image_size == (100, 80) and len(found) > 0
    # RGBA: transparent pixels are composited on white, so a fully transparent image equals a white one
    clear = np.zeros((80, 100, 4), np.uint8)
    white = np.full((80, 100, 3), 255, np.uint8)
    a, b = prompted.detect(clear), prompted.detect(white)
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    path = tmp_path / "scene.png"
    Image.fromarray(rgb).save(path)
    from_path, from_array = prompted.detect([path, rgb])
    assert torch.equal(from_path.boxes, from_array.boxes)


def test_draw_and_json(prompted):
    image = random_image(90, 120)
    found = prompted.detect(image, threshold=0.0)
    drawn = found.draw(image)
    assert drawn.size == (120, 90) and drawn.mode == "RGB"
    changed = (np.asarray(drawn).astype(int) - image.astype(int)).any(axis=2)
    x0, y0, x1, y1 = found.boxes[0].round().int().tolist()
    assert changed.any() and changed[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1].any()
    payload = json.loads(found.to_json())
    assert payload["image_size"] == [120, 90] and payload["classes"] == ["dog", "doorbell", "rain"]
    assert len(payload["detections"]) == len(found)
    assert payload["detections"][0]["name"] == found.names[0]
    with pytest.raises(InputError, match="same image"):
        found.draw(random_image(50, 50))


def test_threshold_filters_detections(prompted):
    image = random_image()
    everything = prompted.detect(image, threshold=0.0)
    cut = float(everything.scores.median())
    kept = prompted.detect(image, threshold=cut)
    assert 0 < len(kept) < len(everything) and (kept.scores > cut).all()
    assert len(prompted.detect(image, threshold=1.0)) == 0


def test_default_detector_missing_is_a_clear_error(enc, sounds, monkeypatch, tmp_path):
    monkeypatch.setattr(detic.prompts, "DEFAULT_DETECTOR_DIR", tmp_path / "missing")
    monkeypatch.setattr(detic.prompts, "_default_detector", None)
    with pytest.raises(RuntimeError, match="not installed"):
        detic.from_audio(sounds, encoder=enc)


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, adapters.detic; heavy = [m for m in ('transformers', 'detectron2', 'torchvision', "
            "'open_clip') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
