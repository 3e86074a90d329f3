"""``python -m demos``: the mission on the bundled examples -- overlay + JSON at 0.9, images, a summary.
Here on tiny random-weight models given by path; with the pocket weights in test_demos_pocket.py."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import demos.__main__ as demo_main
from demos.bundled import example_scene
from demos.models import pocket_installed
from demos.tiny import save_tiny_models

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny-models"))


def flags(folders):
    return ["--encoder", folders["encoder"], "--detector", folders["detector"], "--unclip", folders["unclip"]]


def test_runs_end_to_end_and_writes_overlay_json_images_and_summary(folders, tmp_path, capsys):
    out = tmp_path / "rebind-demo"
    assert demo_main.main(["--out", str(out), "--steps", "2", *flags(folders)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"] == 0.9 and summary["space"] == "test-32"
    assert summary["sound"].endswith("dog.wav") and summary["scene"].endswith("scene_dog_drums.png")

    overlay = Path(summary["overlay"])
    record = json.loads(Path(summary["overlay_json"]).read_text())
    assert overlay.is_file() and Image.open(overlay).size == Image.open(example_scene("scene_dog_drums")).size
    assert record["detections"] == summary["detections"] and record["classes"] == ["dog"]
    assert all(d["score"] > 0.9 for d in record["detections"])

    images = [Path(p) for p in summary["images"]]
    assert len(images) == 2 and all(p.is_file() for p in images)
    assert not np.array_equal(np.asarray(Image.open(images[0])), np.asarray(Image.open(images[1])))

    for step in ("1/3 embedded dog.wav", "2/3 scene_dog_drums.png", "3/3 painted 2 32x32 images"):
        assert step in printed
    assert str(overlay) in printed and str(images[0]) in printed


def test_images_repeat_with_the_seed(folders, tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        assert demo_main.main(["--out", str(tmp_path / name), "--steps", "2", "--images", "1", "--seed", "7",
                               *flags(folders)]) == 0
        runs.append(np.asarray(Image.open(tmp_path / name / "painted_dog_1.png")))
    assert np.array_equal(*runs)


@pytest.mark.skipif(pocket_installed(), reason="the pocket models are installed: the default runs instead")
def test_without_the_pocket_weights_it_fails_with_the_not_installed_message(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "demos", "--out", str(tmp_path / "o")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "the embedded default models (pocket) are not installed" in done.stderr
    assert "--encoder CONFIG --checkpoint FILE --detector FOLDER --unclip FOLDER" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_command_runs_as_a_new_user_would_start_it(folders, tmp_path):
    """A fresh process, another working directory, the default 20 steps."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "demos", *flags(folders)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rebind-demo" / "summary.json").is_file()
    assert "Done in" in done.stdout and seconds < 120
