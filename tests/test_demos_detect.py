"""``python -m demos.detect`` on the shipped examples, with tiny random-weight models given by path
(the same flags that name real models). The JSON must hold what the detector itself returns."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import adapters.detic as detic
import encoders
from demos import detect
from demos.bundled import example_scene, example_scenes, example_sound
from demos.models import DemoModels, pocket_installed
from demos.tiny import save_tiny_models


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny-models"))


def model_flags(folders):
    return ["--encoder", folders["encoder"], "--detector", folders["detector"]]


def run(folders, *args):
    return detect.main([*args, *model_flags(folders)])


def test_overlay_png_and_json_hold_exactly_what_the_detector_finds_at_0_9(folders, tmp_path, capsys):
    scene, dog, drums = example_scene("scene_dog_drums"), example_sound("dog"), example_sound("drums")
    out = tmp_path / "overlay.png"
    assert run(folders, "--audio", dog, "--audio", drums, "--image", scene, "--out", str(out)) == 0

    record = json.loads(out.with_suffix(".json").read_text())
    # the detector on its own, loaded from the same folders, prompted with the same sounds
    encoder = encoders.create(folders["encoder"], modalities=("audio",))
    with detic.from_audio([dog, drums], detector=detic.load_detector(folders["detector"]),
                          encoder=encoder) as prompted:
        expected = prompted.detect(scene)
    assert record["threshold"] == 0.9 and record["classes"] == ["dog", "drums"] == expected.class_names
    assert record["image_size"] == [256, 256]
    assert len(record["detections"]) == len(expected) > 0
    boxes = torch.tensor([d["box"] for d in record["detections"]])
    scores = torch.tensor([d["score"] for d in record["detections"]])
    assert torch.allclose(boxes, expected.boxes, atol=0.006)
    assert torch.allclose(scores, expected.scores, atol=6e-5)
    assert [d["name"] for d in record["detections"]] == expected.names
    assert (scores > 0.9).all()

    overlay = np.asarray(Image.open(out).convert("RGB"))
    original = np.asarray(Image.open(scene).convert("RGB"))
    assert overlay.shape == original.shape
    assert (overlay != original).any(axis=-1).mean() > 0.01  # boxes and labels were drawn
    printed = capsys.readouterr().out
    assert f"scene_dog_drums.png: {len(expected)} boxes above 0.9" in printed and str(out) in printed


def test_a_folder_of_images_gives_one_overlay_and_json_per_image(folders, tmp_path, capsys):
    out = tmp_path / "overlays"
    scenes_dir = str(next(iter(example_scenes().values())).parent)
    assert run(folders, "--audio", example_sound("car"), "--image", scenes_dir, "--out", str(out)) == 0
    for name in example_scenes():
        assert (out / f"{name}.png").is_file()
        record = json.loads((out / f"{name}.json").read_text())
        assert record["classes"] == ["car"] and record["image"].endswith(f"{name}.png")
    assert f"{len(example_scenes())} images, sounds: car" in capsys.readouterr().out


def test_names_label_the_sounds(folders, tmp_path):
    out = tmp_path / "named.png"
    assert run(folders, "--audio", example_sound("dog"), "--audio", example_sound("door"), "--name", "barking dog",
               "--name", "door", "--image", example_scene("scene_dog_drums"), "--out", str(out)) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["classes"] == ["barking dog", "door"]
    assert {d["name"] for d in record["detections"]} <= {"barking dog", "door"}
    assert [s["name"] for s in record["sounds"]] == ["barking dog", "door"]


def test_a_threshold_above_every_score_draws_nothing(folders, tmp_path):
    out = tmp_path / "none.png"
    scene = example_scene("scene_car_drums")
    assert run(folders, "--audio", example_sound("car"), "--image", scene, "--threshold", "0.99999",
               "--out", str(out)) == 0
    assert json.loads(out.with_suffix(".json").read_text())["detections"] == []
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(scene).convert("RGB")))


@pytest.mark.parametrize("args, message", [
    (["--audio", "SCENE", "--image", "SCENE"], "is an image, not a sound"),
    (["--audio", "DOG", "--image", "nowhere/scene.png"], "does not exist"),
    (["--audio", "DOG", "--name", "a", "--name", "b", "--image", "SCENE"], "Got 2 names for 1 sounds"),
    (["--audio", "DOG", "--image", "SCENE", "--threshold", "1.5"], "threshold must be between 0 and 1"),
])
def test_bad_inputs_exit_2_with_a_message_and_no_traceback(folders, tmp_path, capsys, args, message):
    args = [{"SCENE": example_scene("scene_dog_drums"), "DOG": example_sound("dog")}.get(a, a) for a in args]
    assert run(folders, *args, "--out", str(tmp_path / "x.png")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_the_detectors_own_classes_are_back_after_a_run(folders):
    models = DemoModels(encoder=folders["encoder"], detector=folders["detector"])
    detector = models.detector()
    before = list(detector.class_names)
    found = detect.detect_sounds(models, [example_sound("dog")], [example_scene("scene_dog_drums")])
    assert found[0].class_names == ["dog"] and detector.class_names == before


@pytest.mark.skipif(pocket_installed(), reason="the pocket models are installed: the default runs instead")
def test_without_model_flags_it_says_the_default_models_are_not_installed(tmp_path, capsys):
    code = detect.main(["--audio", example_sound("dog"), "--image", example_scene("scene_dog_drums"),
                        "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "pocket" in err and "not installed" in err and "--detector" in err
