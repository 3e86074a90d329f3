"""What people hand the demos: each bad sound or image is refused with a sentence saying why."""
import pytest
import soundfile as sf

from audio_files import synth
from demo_helpers import write_garbage, write_silence, write_tone
from demos.bundled import example_scene, example_sound
from demos.inputs import MAX_SOUND_SECONDS, DemoInputError, check_image, check_sound


def test_a_good_sound_passes_with_its_length_and_name(tmp_path):
    sound = check_sound(write_tone(tmp_path / "barking.wav", seconds=2.0, rate=22050))
    assert sound.name == "barking" and sound.sample_rate == 22050 and sound.seconds == pytest.approx(2.0)
    assert check_sound(example_sound("dog")).name == "dog"


@pytest.mark.parametrize("make, expected", [
    (lambda d: write_garbage(d / "broken.wav"), "Could not read 'broken.wav' as audio"),
    (lambda d: write_garbage(d / "song.mp3"), "Could not read 'song.mp3' as audio"),
    (lambda d: write_silence(d / "quiet.wav"), "'quiet.wav' is silent"),
    (lambda d: write_silence(d / "hum.wav", dc=0.3), "'hum.wav' is silent"),  # a DC offset is no sound
    (lambda d: (d / "empty.wav").touch() or d / "empty.wav", "'empty.wav' is empty"),
    (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "'notes.txt' is not a sound file"),
    (lambda d: example_scene("scene_dog_drums"), "'scene_dog_drums.png' is an image, not a sound"),
    (lambda d: d / "missing.wav", "does not exist"),
    (lambda d: None, "No sound given"),
])
def test_bad_sounds_are_refused_with_the_reason(tmp_path, make, expected):
    with pytest.raises(DemoInputError, match=expected.replace("(", r"\(")):
        check_sound(make(tmp_path))


def test_sounds_longer_than_the_limit_are_refused_with_both_lengths(tmp_path):
    path = tmp_path / "speech.flac"
    sf.write(path, synth(MAX_SOUND_SECONDS + 1.5, 8000)[:, 0], 8000)
    with pytest.raises(DemoInputError, match=r"'speech.flac' is 31.5 s long; this demo takes sounds up to 30 s"):
        check_sound(path)
    assert check_sound(path, max_seconds=60).seconds == pytest.approx(31.5)


def test_images_are_read_as_rgb_and_bad_ones_refused(tmp_path):
    assert check_image(example_scene("scene_car_drums")).mode == "RGB"
    with pytest.raises(DemoInputError, match="Could not read 'x.png' as an image"):
        check_image(write_garbage(tmp_path / "x.png"))
    with pytest.raises(DemoInputError, match="No image given"):
        check_image(None)
