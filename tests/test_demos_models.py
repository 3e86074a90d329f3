"""DemoModels: the embedded default or explicit models (objects, folders, names), each loaded once."""
import argparse

import gradio as gr
import pytest
import torch

import adapters.detic as detic
import encoders
from demos.app import DemoApp
from demos.bundled import example_scene, example_sound
from demos.detect import detect_sounds
from demos.models import DemoModels, ModelsNotInstalled, add_model_arguments, pocket_installed
from demos.tiny import save_tiny_models, tiny_detector, tiny_encoder

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny-models"))


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    return DemoModels.from_args(parser.parse_args(list(argv)))


def test_objects_are_used_as_given():
    encoder, detector = tiny_encoder(), tiny_detector()
    models = DemoModels(encoder=encoder, detector=detector)
    assert models.encoder("audio") is encoder["audio"] and models.encoder("text") is encoder["text"]
    assert models.detector() is detector


def test_folders_load_on_first_use_and_only_once(folders):
    models = parse("--encoder", folders["encoder"], "--detector", folders["detector"], "--unclip", folders["unclip"])
    assert models.describe()["detector"] == f"{folders['detector']} (not loaded yet)"
    assert not models.is_loaded("detector") and not models.is_loaded("encoder")
    detector = models.detector()
    assert isinstance(detector, detic.DeticStyleDetector) and models.detector() is detector
    assert models.encoder("audio") is models.encoder("audio") and models.encoder("audio").space.name == "test-32"
    assert models.generator() is models.generator() and models.generator().space.name == "test-32"
    assert models.describe()["detector"] == folders["detector"]


def test_a_config_name_with_checkpoint_none_builds_random_weights_tower_by_tower():
    models = parse("--encoder", "imagebind_test", "--checkpoint", "none")
    assert models.checkpoint is False
    audio = models.encoder("audio")
    assert audio.modality == "audio" and audio.space.name == "test-32"
    assert not models.is_loaded("encoder", "text")
    assert models.encoder("text").modality == "text"


def test_unknown_encoders_and_missing_towers_are_named(folders, tmp_path):
    with pytest.raises(FileNotFoundError, match="'no-such-encoder' is neither an encoder config"):
        parse("--encoder", "no-such-encoder").encoder("audio")
    audio_only = tmp_path / "audio-only"
    encoders.save_modalities(tiny_encoder(), audio_only, modalities=["audio"])
    handlers = DemoApp(DemoModels(encoder=str(audio_only), unclip=folders["unclip"]), default_steps=2)
    with pytest.raises(gr.Error, match="has no text tower .it has audio.; a text input cannot be used with it"):
        handlers.generate(example_sound("dog"), mix_text="a beach", mix_weight=0.3)
    assert len(handlers.generate(example_sound("dog"))) == 1  # without mixing it still paints


def tiny_owl_folder(folder):
    torch.manual_seed(0)
    config = transformers.Owlv2Config(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=1000, bos_token_id=1, eos_token_id=2, pad_token_id=0, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=64, patch_size=16),
        projection_dim=32)
    model = transformers.Owlv2ForObjectDetection(config).eval()
    tokenizer = transformers.CLIPTokenizer(vocab={"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}, merges=[],
                                           pad_token="!", model_max_length=16)
    processor = transformers.Owlv2Processor(image_processor=transformers.Owlv2ImageProcessor(
        size={"height": 64, "width": 64}), tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_an_owl_checkpoint_folder_is_recognised_and_prompted_with_sounds(tmp_path):
    folder = tiny_owl_folder(tmp_path / "owlv2-tiny")
    for spec in (str(folder), f"owl:{folder}"):
        models = DemoModels(encoder=tiny_encoder(), detector=spec, detector_space="test-32")
        assert isinstance(models.detector(), detic.OwlDetector)
        found = detect_sounds(models, [example_sound("dog")], [example_scene("scene_dog_drums")], threshold=0.0)[0]
        assert found.class_names == ["dog"] and found.image_size == (256, 256)


@pytest.mark.skipif(pocket_installed(), reason="the pocket models are installed")
def test_only_the_parts_left_to_the_default_must_be_installed(folders):
    DemoModels(encoder=folders["encoder"], detector=folders["detector"], unclip=folders["unclip"]).check_installed()
    partly = DemoModels(encoder=folders["encoder"], unclip=folders["unclip"])
    with pytest.raises(ModelsNotInstalled) as error:
        partly.check_installed()
    message = str(error.value)
    assert "pocket_detector" in message and "--detector FOLDER" in message
    assert "pocket_unclip" not in message and "--unclip" not in message
    partly.check_installed(("encoder", "unclip"))
    with pytest.raises(ModelsNotInstalled, match="pocket_detector"):
        partly.detector()
