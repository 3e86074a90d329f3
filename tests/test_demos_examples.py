"""The bundled examples: present, small, readable, usable by the demos, and each one attributed."""
import re

import numpy as np
from PIL import Image

from demos.bundled import EXAMPLES_DIR, example_scenes, example_sounds
from demos.inputs import check_sound

ATTRIBUTION = (EXAMPLES_DIR / "ATTRIBUTION.md").read_text()


def test_a_dog_and_at_least_four_other_sounds_and_two_scenes_are_bundled():
    sounds, scenes = example_sounds(), example_scenes()
    assert "dog" in sounds and len(sounds) >= 5
    assert 2 <= len(scenes) <= 3
    assert any("dog" in name for name in scenes)


def test_the_examples_folder_stays_small():
    total = sum(p.stat().st_size for p in EXAMPLES_DIR.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024, f"demos/examples holds {total / 1e6:.2f} MB"


def test_every_sound_is_readable_short_and_audible():
    for name, path in example_sounds().items():
        sound = check_sound(path)  # raises with the reason otherwise
        assert sound.name == name and 0.2 < sound.seconds <= 10


def test_every_scene_is_a_256_pixel_rgb_image():
    for path in example_scenes().values():
        with Image.open(path) as im:
            assert im.size == (256, 256)
            assert np.asarray(im.convert("RGB")).std() > 10  # a picture, not a blank


def test_every_file_is_attributed_with_its_licence_and_source():
    files = [p.relative_to(EXAMPLES_DIR).as_posix() for p in EXAMPLES_DIR.rglob("*")
             if p.is_file() and p.name != "ATTRIBUTION.md"]
    assert files
    for rel in files:
        rows = [line for line in ATTRIBUTION.splitlines() if f"`{rel}`" in line]
        assert len(rows) >= 2, f"{rel} needs a row in the overview and one with its source"
        source_row = rows[1]
        assert re.search(r"CC0|CC-BY|GPL|OFL|Free Art", source_row + rows[0]), f"{rel}: no licence named"
        assert "test" in source_row or "scenes/test/" in source_row or "audio/" in source_row
    # the upstream packages are named with their versions
    for package in ("gcompris-qt-data 3.1-2", "sonic-pi-samples 3.2.2~repack-8", "openttd-opensfx 1.0.3-2"):
        assert package in ATTRIBUTION
