"""The demos on the embedded default (the pocket models), with no model flags at all.

These skip when the pocket encoders, detector and unCLIP are not installed in this checkout
(encoders/weights/pocket/, adapters/weights/pocket_detector/, adapters/weights/pocket_unclip/).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from demos.bundled import example_scene, example_sound
from demos.models import DemoModels, pocket_installed, pocket_missing

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not pocket_installed(),
                                reason="the pocket weights are not installed yet: " + "; ".join(pocket_missing()))

# Ground truth of the bundled scenes (demos/examples/ATTRIBUTION.md), x0 y0 x1 y1 in pixels.
DOG_IN_DOG_SCENE = [134, 127, 159, 154]
CAR_IN_CAR_SCENE = [17, 100, 99, 152]


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_python_m_demos_runs_offline_on_the_default_in_well_under_a_minute(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "demos"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "rebind-demo" / "summary.json").read_text())
    assert summary["space"] == "pocket" and summary["threshold"] == 0.9
    written = [summary["overlay"], summary["overlay_json"], *summary["images"]]
    assert len(summary["images"]) == 2 and all((tmp_path / p).is_file() for p in written), written
    assert seconds < 60, f"python -m demos took {seconds:.0f} s"


# The targets at 0.9 on the bundled scenes. The shipped pocket detector's scores stay far
# below 0.9 (its best boxes score ~0.1-0.5; see adapters/weights/pocket_detector/ and
# tests/test_pocket_detector.py for what it does get right). strict: they turn red once reached.
AT_0_9 = pytest.mark.xfail(strict=True, reason="pocket detector scores stay below 0.9")


@AT_0_9
def test_the_default_models_find_the_barking_dog_at_0_9():
    from demos.detect import detect_sounds

    found = detect_sounds(DemoModels(), [example_sound("dog")], [example_scene("scene_dog_drums")], 0.9)[0]
    assert any(n == "dog" and iou(b, DOG_IN_DOG_SCENE) >= 0.5 for n, b in zip(found.names, found.boxes.tolist()))


# passes since the audio encoder's self-supervised start (the held-out car sound scores its car 0.95)
def test_the_overlay_script_finds_the_car_with_the_default_models(tmp_path):
    from demos import detect

    out = tmp_path / "car.png"
    assert detect.main(["--audio", example_sound("car"), "--image", example_scene("scene_car_drums"),
                        "--out", str(out)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert any(iou(d["box"], CAR_IN_CAR_SCENE) >= 0.5 for d in record["detections"]), record["detections"]


def test_the_default_models_share_one_space_and_the_app_paints_with_them():
    from demos.app import DemoApp

    models = DemoModels()
    models.check_installed()
    assert models.encoder("audio").space.name == models.detector().space.name == models.generator().space.name
    images = DemoApp(models).generate(example_sound("dog"), num_images=1, steps=10)
    assert len(images) == 1
    with Image.open(images[0][0]) as im:
        assert min(im.size) >= 32


def test_the_overlay_script_says_what_the_best_box_scored_when_none_passes(tmp_path, capsys):
    """At 0.9 the pocket detector keeps nothing for the bark here; the line says what it would draw lower down.

    (Its best box is not the small dog of this scene, with this or the previous audio encoders.)"""
    from demos import detect

    out = tmp_path / "dog.png"
    args = ["--audio", example_sound("dog"), "--image", example_scene("scene_dog_drums"), "--out", str(out)]
    assert detect.main(args) == 0
    line = capsys.readouterr().out
    assert "nothing above 0.9 (best box: dog 0." in line, line
    best = float(line.split("best box: dog ")[1].split(";")[0])
    assert detect.main([*args, "--threshold", str(best - 0.01)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())  # the box the line announced, now drawn
    assert [d["name"] for d in record["detections"]][:1] == ["dog"], record["detections"]
    assert abs(record["detections"][0]["score"] - best) < 0.006, (best, record["detections"])
