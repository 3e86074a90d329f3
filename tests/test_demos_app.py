"""The Gradio app: its handlers called directly, then the app launched on a free loopback port and
called with gradio_client -- images, boxes, readable errors, and a server that keeps serving."""
import json

import gradio as gr
import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from gradio_client import Client, handle_file
from PIL import Image

from audio_files import synth
from demo_helpers import serving, write_garbage, write_silence, write_tone
from demos.app import DemoApp, build_app
from demos.bundled import example_scene, example_sound
from demos.models import DemoModels, pocket_installed
from demos.tiny import save_tiny_models, tiny_models

STEPS = 2


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture(scope="module")
def handlers(models):
    return DemoApp(models, default_steps=STEPS)


def pixels(paths):
    return np.stack([np.asarray(Image.open(p), dtype=np.float32) for p in paths])


# ------------------------------------------------------------------------------- handlers, direct

def test_generate_gives_the_requested_number_of_captioned_images(handlers):
    out = handlers.generate(example_sound("dog"), num_images=3, seed=0, steps=STEPS)
    assert [caption for _, caption in out] == ["dog #1", "dog #2", "dog #3"]
    for path, _ in out:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (32, 32)
    assert len({path for path, _ in out}) == 3


def test_the_same_seed_repeats_and_another_seed_or_sound_changes_the_images(handlers):
    a = [im for im, _ in handlers.generate(example_sound("dog"), seed=5, steps=STEPS)]
    b = [im for im, _ in handlers.generate(example_sound("dog"), seed=5, steps=STEPS)]
    c = [im for im, _ in handlers.generate(example_sound("dog"), seed=6, steps=STEPS)]
    d = [im for im, _ in handlers.generate(example_sound("drums"), seed=5, steps=STEPS)]
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c)) and not np.array_equal(pixels(a), pixels(d))


def test_mixing_a_text_or_an_image_moves_the_result_and_weight_0_does_not(handlers):
    def run(**mix):
        return pixels([im for im, _ in handlers.generate(example_sound("dog"), seed=1, steps=STEPS, **mix)])

    plain = run()
    assert np.array_equal(plain, run(mix_text="a beach at sunset", mix_weight=0.0))
    with_text = run(mix_text="a beach at sunset", mix_weight=0.5)
    with_image = run(mix_image=example_scene("scene_car_drums"), mix_weight=0.5)
    assert not np.array_equal(plain, with_text) and not np.array_equal(plain, with_image)
    assert not np.array_equal(with_text, with_image)
    assert handlers.generate(example_sound("dog"), mix_text="x", mix_weight=0.5, steps=STEPS)[0][1] == "dog + mix #1"


def test_detect_returns_the_overlay_a_table_and_the_json_of_the_same_boxes(handlers):
    overlay, rows, json_path = handlers.detect(example_scene("scene_dog_drums"), example_sound("dog"),
                                               [example_sound("drums")])
    record = json.loads(open(json_path).read())
    with Image.open(overlay) as im:
        assert im.size == (256, 256)
    assert record["threshold"] == 0.9 and record["classes"] == ["dog", "drums"]
    assert record["image"] == "scene_dog_drums.png"
    assert len(rows) == len(record["detections"]) > 0
    for row, det in zip(rows, record["detections"]):
        assert row[0] == det["name"] and row[1] == pytest.approx(det["score"], abs=1e-3)
        assert row[2:] == pytest.approx(det["box"], abs=0.06)
        assert row[1] > 0.9


def test_detect_labels_and_threshold_come_from_the_form(handlers):
    _, rows, json_path = handlers.detect(example_scene("scene_dog_drums"), example_sound("dog"),
                                         [example_sound("drums")], labels="barking dog, drum kit")
    assert json.loads(open(json_path).read())["classes"] == ["barking dog", "drum kit"]
    assert {r[0] for r in rows} <= {"barking dog", "drum kit"}
    _, rows, _ = handlers.detect(example_scene("scene_dog_drums"), example_sound("dog"), threshold=0.99999)
    assert rows == []


@pytest.mark.parametrize("make, expected", [
    (lambda d: write_garbage(d / "broken.wav"), "Could not read 'broken.wav' as audio"),
    (lambda d: write_silence(d / "quiet.wav"), "'quiet.wav' is silent"),
    (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", "'notes.txt' is not a sound file"),
    (lambda d: example_scene("scene_dog_drums"), "is an image, not a sound"),
    (lambda d: None, "No sound given"),
])
def test_bad_sounds_become_a_gradio_error_with_the_reason(handlers, tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(gr.Error, match=expected) as generate_error:
        handlers.generate(None if path is None else str(path))
    with pytest.raises(gr.Error, match=expected):
        handlers.detect(example_scene("scene_dog_drums"), None if path is None else str(path))
    assert "Traceback" not in str(generate_error.value)


def test_too_long_sounds_and_missing_images_are_refused(models, tmp_path):
    strict = DemoApp(models, max_sound_seconds=2.0, default_steps=STEPS)
    long_sound = write_tone(tmp_path / "long.wav", seconds=3.0)
    with pytest.raises(gr.Error, match=r"'long.wav' is 3.0 s long; this demo takes sounds up to 2 s"):
        strict.generate(str(long_sound))
    with pytest.raises(gr.Error, match="No image given"):
        strict.detect(None, example_sound("dog"))
    with pytest.raises(gr.Error, match="number of images must be a whole number from 1 to 4"):
        strict.generate(example_sound("dog"), num_images=9)


def test_a_server_side_failure_is_a_short_message_not_a_stack_trace(tmp_path, caplog):
    folders = save_tiny_models(tmp_path)
    weights = tmp_path / "detector" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download
    broken = DemoApp(DemoModels(encoder=folders["encoder"], detector=folders["detector"]))
    with pytest.raises(gr.Error) as error:
        broken.detect(example_scene("scene_dog_drums"), example_sound("dog"))
    message = str(error.value)
    assert "Something went wrong on the server" in message and "Traceback" not in message
    assert "request failed" in caplog.text  # the details went to the server log


def test_models_load_once_on_first_use(tmp_path):
    folders = save_tiny_models(tmp_path)
    models = DemoModels(encoder=folders["encoder"], detector=folders["detector"], unclip=folders["unclip"])
    handlers = DemoApp(models, default_steps=STEPS)
    assert not any(models.is_loaded(p) for p in ("encoder", "detector", "unclip"))
    messages = []
    handlers.generate(example_sound("dog"), progress=lambda value, desc=None: messages.append(desc))
    assert models.is_loaded("encoder") and models.is_loaded("unclip") and not models.is_loaded("detector")
    assert "Loading the unCLIP image generator (first use only)..." in messages
    generator = models.generator()
    messages.clear()
    handlers.generate(example_sound("drums"), progress=lambda value, desc=None: messages.append(desc))
    assert models.generator() is generator and not any("Loading" in (m or "") for m in messages)


def test_the_app_defaults_to_threshold_0_9_and_has_examples(models):
    app = build_app(models, default_steps=STEPS)
    config = app.get_config_file()
    sliders = {c["props"].get("label"): c["props"].get("value") for c in config["components"]
               if c.get("type") == "slider"}
    assert sliders["Score threshold"] == 0.9
    assert app.analytics_enabled is False
    dataset_rows = [c["props"]["samples"] for c in config["components"] if c.get("type") == "dataset"]
    assert len(dataset_rows) == 2 and all(len(rows) >= 3 for rows in dataset_rows)


# ------------------------------------------------------------------------------ launched, loopback

@pytest.fixture(scope="module")
def served(models):
    app = build_app(models, default_steps=STEPS)
    with serving(app, concurrency=2, max_file_size="1mb") as url:
        yield app, url


@pytest.fixture(scope="module")
def client(served):
    return Client(served[1], verbose=False)


def test_it_serves_on_loopback_with_a_queue_and_an_upload_limit(served):
    app, url = served
    assert url.startswith("http://127.0.0.1:")
    assert app.max_file_size == 1024 * 1024
    assert app._queue.default_concurrency_limit == 2
    assert set(Client(url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]) \
        >= {"/generate", "/detect"}


def test_generate_over_http_returns_png_images(client):
    gallery = client.predict(handle_file(example_sound("dog")), "", None, 0.3, 0, STEPS, 2, api_name="/generate")
    assert [item["caption"] for item in gallery] == ["dog #1", "dog #2"]
    for item in gallery:
        with Image.open(item["image"]) as im:
            assert im.format == "PNG" and im.size == (32, 32)


def test_detect_over_http_returns_overlay_table_and_json(client):
    overlay, table, json_file = client.predict(
        handle_file(example_scene("scene_dog_drums")), handle_file(example_sound("dog")),
        [handle_file(example_sound("drums"))], "", 0.9, api_name="/detect")
    with Image.open(overlay) as im:
        assert im.size == (256, 256)
    record = json.loads(open(json_file).read())
    assert table["headers"] == ["sound", "score", "x0", "y0", "x1", "y1"]
    assert len(table["data"]) == len(record["detections"]) > 0
    assert record["classes"] == ["dog", "drums"]


def test_errors_reach_the_client_as_messages_and_the_server_keeps_serving(client, tmp_path):
    broken = write_garbage(tmp_path / "broken.wav")
    with pytest.raises(Exception, match="Could not read 'broken.wav' as audio"):
        client.predict(handle_file(str(broken)), "", None, 0.3, 0, STEPS, 1, api_name="/generate")
    with pytest.raises(Exception, match="is an image, not a sound"):
        client.predict(handle_file(example_scene("scene_dog_drums")), "", None, 0.3, 0, STEPS, 1, api_name="/generate")
    silent = write_silence(tmp_path / "quiet.wav")
    with pytest.raises(Exception, match="'quiet.wav' is silent"):
        client.predict(handle_file(example_scene("scene_dog_drums")), handle_file(str(silent)), None, "", 0.9,
                       api_name="/detect")
    # uploads over --max-file-size (1 MB here) are refused: by the client, and by the server (HTTP 413)
    big = tmp_path / "big.wav"
    sf.write(big, synth(20.0, 44100)[:, 0], 44100, subtype="FLOAT")  # 3.5 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(big)), "", None, 0.3, 0, STEPS, 1, api_name="/generate")
    with open(big, "rb") as f:
        refused = httpx.post(client.src + "gradio_api/upload", files={"files": f})
    assert refused.status_code == 413
    gallery = client.predict(handle_file(example_sound("car")), "", None, 0.3, 0, STEPS, 1, api_name="/generate")
    assert len(gallery) == 1 and gallery[0]["caption"] == "car #1"


def test_concurrent_requests_give_the_same_images_as_one_at_a_time(models):
    from concurrent.futures import ThreadPoolExecutor

    handlers = DemoApp(models, default_steps=STEPS)
    jobs = [("dog", 2, 3), ("drums", 3, 4), ("car", 2, 5), ("dog", 4, 6)]  # sound, steps, seed

    def run(job):
        sound, steps, seed = job
        return pixels([im for im, _ in handlers.generate(example_sound(sound), steps=steps, seed=seed)])

    alone = [run(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, jobs * 2))
    for i, result in enumerate(together):
        assert np.array_equal(result, alone[i % len(jobs)])


def test_identical_requests_at_once_all_get_complete_files(served):
    """Same inputs -> same result files; gradio must never hand one client another's half-written copy
    (it rewrites a returned PIL image's cache file in place, which is why the handlers return files)."""
    from concurrent.futures import ThreadPoolExecutor

    url = served[1]

    def one(i):
        client = Client(url, verbose=False)
        if i % 2:
            overlay, _, _ = client.predict(handle_file(example_scene("scene_dog_drums")),
                                           handle_file(example_sound("dog")), None, "", 0.9, api_name="/detect")
            paths = [overlay]
        else:
            gallery = client.predict(handle_file(example_sound("dog")), "", None, 0.3, 0, STEPS, 1,
                                     api_name="/generate")
            paths = [item["image"] for item in gallery]
        for path in paths:
            with Image.open(path) as im:
                im.load()  # raises on a truncated PNG
        return len(paths)

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(one, range(10))) == [1] * 10


# ------------------------------------------------------------------------------ the command itself

def app_command(*flags):
    import sys

    return [sys.executable, "-m", "demos.app", *flags]


def app_env():
    import os
    from pathlib import Path

    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))


@pytest.mark.skipif(pocket_installed(), reason="the pocket models are installed")
def test_the_command_refuses_to_start_without_models_and_says_why(tmp_path):
    import subprocess

    done = subprocess.run(app_command("--port", "0"), cwd=tmp_path, env=app_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "not installed" in done.stderr and "--unclip FOLDER" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_command_serves_explicit_models_given_by_path(tmp_path):
    import subprocess
    import time

    from demo_helpers import free_port

    folders = save_tiny_models(tmp_path / "models")
    port = free_port()
    server = subprocess.Popen(app_command("--port", str(port), "--steps", "2", "--encoder", folders["encoder"],
                                          "--detector", folders["detector"], "--unclip", folders["unclip"]),
                              cwd=tmp_path, env=app_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}/", time.time() + 180
        while True:
            try:
                if httpx.get(url + "config", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.time() < deadline, "the app did not come up"
            time.sleep(0.5)
        gallery = Client(url, verbose=False).predict(handle_file(example_sound("door")), "", None, 0.3, 0, 2, 1,
                                                     api_name="/generate")
        assert gallery[0]["caption"] == "door #1"
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "Loading the unCLIP image generator (first use only)..." in log and "Traceback" not in log


def test_concurrent_detections_with_different_sounds_match_one_at_a_time(models):
    """Each request prompts the one shared detector with its own sounds and restores it afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    handlers = DemoApp(models, default_steps=STEPS)
    jobs = [("scene_dog_drums", "dog", ["drums"]), ("scene_car_drums", "car", []),
            ("scene_airplane_drums", "airplane", ["door", "drums"]), ("scene_dog_drums", "door", ["car"])]
    before = list(models.detector().class_names)

    def run(job):
        scene, sound, more = job
        _, rows, json_path = handlers.detect(example_scene(scene), example_sound(sound),
                                             [example_sound(m) for m in more], threshold=0.0)
        return rows, json.loads(open(json_path).read())["classes"]

    alone = [run(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, jobs * 3))
    for i, result in enumerate(together):
        assert result == alone[i % len(jobs)]
    assert models.detector().class_names == before
