"""Pocket-world data build: container readers, recording grouping, splits, scenes, manifests.

Fast and offline; the one test that downloads a real package is marked slow.
"""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pretrain.pocket import audio as A
from pretrain.pocket.licenses import license_for, parse_dep5
from pretrain.pocket.manifests import (AUDIO_COLUMNS, assign_splits, read_manifest, split_counts,
                                       write_manifest)
from pretrain.pocket.opensfx import SoundBankError, parse_sound_bank
from pretrain.pocket.rcc import RccError, parse_rcc
from pretrain.pocket.scenes import Camera, SceneItem, make_scene


# --- Qt .rcc -------------------------------------------------------------------------------

def _rcc_name(name: str) -> bytes:
    encoded = name.encode("utf-16-be")
    return struct.pack(">HI", len(name), 0) + encoded


def make_rcc(files: dict[str, tuple[bytes, bool]], version: int = 3) -> bytes:
    """A one-directory bundle ":/dir/<name>" written from the format description."""
    names = b""
    name_off = {}
    for n in ["dir", *files]:
        name_off[n] = len(names)
        names += _rcc_name(n)
    data = b""
    data_off = {}
    for n, (payload, compress) in files.items():
        blob = struct.pack(">I", len(payload)) + zlib.compress(payload) if compress else payload
        data_off[n] = len(data)
        data += struct.pack(">I", len(blob)) + blob
    mtime = b"\0" * 8 if version >= 2 else b""
    tree = struct.pack(">IHII", 0, 2, 1, 1) + mtime  # root: 1 child at index 1
    tree += struct.pack(">IHII", name_off["dir"], 2, len(files), 2) + mtime
    for n, (_, compress) in files.items():
        tree += struct.pack(">IHHHI", name_off[n], 1 if compress else 0, 0, 0, data_off[n]) + mtime
    header_len = 20 + (4 if version >= 3 else 0)
    data_at = header_len
    names_at = data_at + len(data)
    tree_at = names_at + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + data + names + tree


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_reads_plain_and_zlib_entries(version):
    files = {"bark.ogg": (b"OggS" + bytes(range(200)), True), "note.txt": (b"hello", False)}
    got = parse_rcc(make_rcc(files, version))
    assert got == {"dir/bark.ogg": files["bark.ogg"][0], "dir/note.txt": b"hello"}


def test_rcc_reader_rejects_bad_magic_and_bad_sizes():
    with pytest.raises(RccError, match="magic"):
        parse_rcc(b"RIFF" + bytes(40))
    blob = bytearray(make_rcc({"a.wav": (b"x" * 50, True)}))
    # corrupt the stored uncompressed size of the zlib entry
    at = blob.index(struct.pack(">I", 50))
    blob[at:at + 4] = struct.pack(">I", 51)
    with pytest.raises(RccError, match="header says 51"):
        parse_rcc(bytes(blob))


# --- OpenTTD sound bank ----------------------------------------------------------------------

def _wav(wave: np.ndarray, rate: int = 22050) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _wav_bytes(seconds=0.1, rate=11025) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return _wav(0.5 * np.sin(2 * np.pi * 440 * t), rate)


def make_cat(entries: list[tuple[str, bytes]]) -> bytes:
    table_len = 8 * len(entries)
    bodies, table, offset = b"", b"", table_len
    for name, data in entries:
        raw = name.encode() + b"\0"
        body = bytes([len(raw)]) + raw + data
        table += struct.pack("<II", offset | 0x80000000, len(body))
        bodies += body
        offset += len(body)
    return table + bodies


def test_sound_bank_reader_returns_wav_entries_and_stub_slots():
    wav = _wav_bytes()
    cat = make_cat([('"Cow". License: Creative Commons Zero 1.0.', wav), ("Unused", b"")])
    entries = parse_sound_bank(cat)
    assert [e.index for e in entries] == [0, 1]
    assert entries[0].name.startswith('"Cow"') and entries[0].data == wav
    assert entries[1].data == b""
    assert sf.info(io.BytesIO(entries[0].data)).samplerate == 11025


def test_sound_bank_reader_rejects_old_format_and_overruns():
    with pytest.raises(SoundBankError, match="old-format"):
        parse_sound_bank(struct.pack("<II", 8, 4) + b"abcd")
    bad = bytearray(make_cat([("x", _wav_bytes())]))
    bad[4:8] = struct.pack("<I", 10_000_000)
    with pytest.raises(SoundBankError, match="runs past"):
        parse_sound_bank(bytes(bad))


# --- recordings ------------------------------------------------------------------------------

def synthetic_take(seed: int, rate: int = 22050, seconds: float = 1.6) -> np.ndarray:
    """A bark-like take: random harmonic chirps at random times, over low noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.003 * rng.standard_normal(len(t))
    for _ in range(4):
        start, length = rng.uniform(0, seconds - 0.3), rng.uniform(0.08, 0.25)
        f0, f1 = rng.uniform(250, 700), rng.uniform(250, 900)
        env = np.exp(-0.5 * ((t - start - length / 2) / (length / 4)) ** 2)
        phase = 2 * np.pi * np.cumsum(np.interp(t, [start, start + length], [f0, f1])) / rate
        for h in range(1, 6):
            wave += env * np.sin(h * phase) * rng.uniform(0.05, 0.25) / h
    return (0.8 * wave / np.abs(wave).max()).astype(np.float32)


def _write(path: Path, wave: np.ndarray, rate: int) -> Path:
    sf.write(path, wave, rate, subtype="PCM_16")
    return path


def _load(path: Path) -> np.ndarray:
    return A.trim_silence(A.decode(path.read_bytes(), str(path)))


def test_grouping_joins_edits_of_one_take_and_separates_distinct_takes(tmp_path):
    rate = 22050
    take = synthetic_take(1, rate)
    files = {
        "take.wav": _write(tmp_path / "take.wav", take, rate),
        # resampling pitch shift (+2 semitones): played back at the same rate, shorter and higher
        "up2.wav": _write(tmp_path / "up2.wav", take, int(rate * 2 ** (2 / 12))),
        "down3.wav": _write(tmp_path / "down3.wav", take, int(rate * 2 ** (-3 / 12))),
        "trimmed.wav": _write(tmp_path / "trimmed.wav", take[int(0.25 * len(take)):], rate),
        "copy.wav": _write(tmp_path / "copy.wav", take, rate),
        "other1.wav": _write(tmp_path / "other1.wav", synthetic_take(2, rate), rate),
        "other2.wav": _write(tmp_path / "other2.wav", synthetic_take(3, rate), rate),
    }
    names = list(files)
    waves = [_load(files[n]) for n in names]
    g = A.group_recordings(waves, [f"dir/{n}" for n in names])  # distinct stems: sound decides
    idx = {n: i for i, n in enumerate(names)}
    assert g.dropped[idx["copy.wav"]] == (idx["take.wav"], "exact")
    rec = {n: g.recording[idx[n]] for n in names if idx[n] in g.recording}
    edits = {rec[n] for n in ("take.wav", "up2.wav", "down3.wav", "trimmed.wav")}
    assert len(edits) == 1, rec
    assert len({rec["take.wav"], rec["other1.wav"], rec["other2.wav"]}) == 3, rec


def test_grouping_joins_numbered_variants_by_name_stem():
    a, b = synthetic_take(5), synthetic_take(6)
    stems = [A.name_stem("snd/sheep_01.ogg"), A.name_stem("snd/sheep_02.ogg")]
    assert stems[0] == stems[1] == "snd/sheep"
    assert A.name_stem("x/LRBark_1_LA_cut.ogg") == A.name_stem("x/LRBark_3_LA_cut.ogg")
    assert A.name_stem("x/fire_fire.1.ogg") == "x/fire_fire"
    assert A.name_stem("x/bird1_00.ogg") == "x/bird1" != A.name_stem("x/bird2_00.ogg")
    g = A.group_recordings([a, b], stems)
    assert g.recording[0] == g.recording[1]
    g = A.group_recordings([a, b], ["snd/a", "snd/b"])
    assert g.recording[0] != g.recording[1]


def test_a_later_clip_joins_one_earlier_recording_but_never_merges_two():
    a, b = synthetic_take(5), synthetic_take(6)
    both = np.concatenate([a, b])  # sounds like each of the two takes, which differ from each other
    stems = ["old/a", "old/b", "new/both"]
    g = A.group_recordings([a, b, both], stems)
    assert g.recording[0] == g.recording[1] == g.recording[2]  # one source set: the chain joins all
    g = A.group_recordings([a, b, both], stems, cohorts=[0, 0, 1])
    assert g.recording[2] == g.recording[0] != g.recording[1]  # added later: joins one, merges none
    g = A.group_recordings([a, b, both], stems, cohorts=[0, 1, 1])
    assert g.recording[0] == g.recording[1] == g.recording[2]  # b is of the later cohort too
    with pytest.raises(ValueError, match="non-decreasing"):
        A.group_recordings([a, b, both], stems, cohorts=[1, 0, 0])


def test_silence_is_trimmed_and_detected():
    tone = np.sin(np.linspace(0, 200 * np.pi, 8000)).astype(np.float32) * 0.5
    padded = np.concatenate([np.zeros(16000, np.float32), tone, np.zeros(8000, np.float32)])
    trimmed = A.trim_silence(padded)
    assert len(tone) <= len(trimmed) <= len(tone) + 2 * 320 + 320
    assert A.is_silent(np.zeros(16000, np.float32)) and not A.is_silent(trimmed)


# --- splits and manifests --------------------------------------------------------------------

def test_split_counts_put_a_recording_in_test_from_three_on():
    assert split_counts(1) == (1, 0, 0) and split_counts(2) == (2, 0, 0)
    for n in range(3, 40):
        tr, va, te = split_counts(n)
        assert tr + va + te == n and te >= 1 and tr >= 1 and (va >= 1) == (n >= 4)


def test_splits_never_share_a_recording_and_are_deterministic():
    clips = [(f"rec{k // 3}", f"clip{k}") for k in range(60)]  # 20 recordings x 3 clips
    split = assign_splits([r for r, _ in clips], "dog", seed=7)
    assert split == assign_splits([r for r, _ in reversed(clips)], "dog", seed=7)
    by_split = {s: {r for r, _ in clips if split[r] == s} for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["val"] & by_split["test"])
    assert all(by_split.values())
    assert assign_splits([r for r, _ in clips], "dog", seed=8) != split


def test_manifest_round_trip_and_column_check(tmp_path):
    rows = [{"path": "audio/dog/a.wav", "label": "dog", "recording": "dog/a",
             "source": "gcompris:x.rcc!a,b.ogg", "license": 'CC0 ("quoted")', "duration": "1.250",
             "extra": "not written"}]
    path = tmp_path / "manifests" / "audio_train.csv"
    write_manifest(path, rows, AUDIO_COLUMNS)
    back = read_manifest(path, AUDIO_COLUMNS)
    assert back == [{k: rows[0][k] for k in AUDIO_COLUMNS}]
    assert not list(path.parent.glob(".*tmp*"))  # the temp file was renamed away
    with pytest.raises(ValueError, match="expected"):
        read_manifest(path, ("path", "label"))


def test_dep5_licence_lookup_prefers_specific_paragraphs():
    text = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
License: LGPL-2.1+

Files: *.ogg
License: CC-BY-SA-3.0

Files: mtg/mods/doors/sounds/*
License: CC-BY-3.0

Files: mtg/mods/tnt/sounds/*
License: CC0-1.0

Files: data/globalmods/apoc/*
License: CC-BY-SA-3

Files: hedgewars/*
License: GPL-2
"""
    stanzas = parse_dep5(text)
    base = "usr/share/games/minetest/games/minetest_game/mods"
    assert license_for(stanzas, f"{base}/doors/sounds/door.ogg", "X") == "CC-BY-3.0"
    assert license_for(stanzas, f"{base}/tnt/sounds/boom.ogg", "X") == "CC0-1.0"
    assert license_for(stanzas, f"{base}/fire/sounds/fire.ogg", "X") == "CC-BY-SA-3.0"
    assert license_for(stanzas, f"{base}/fire/textures/fire.png", "X") == "X"
    # a directory named by >= 2 literal components covers its subfolders; one component does not
    mod = "usr/share/games/scorched3d/data/globalmods/apoc/data/wav/misc/dog.wav"
    assert license_for(stanzas, mod, "X") == "CC-BY-SA-3"
    assert license_for(stanzas, mod.replace("/apoc/", "/none/"), "X") == "X"
    assert license_for(stanzas, "usr/share/games/hedgewars/Data/Sounds/bee.wav", "X") == "X"
    assert parse_dep5("This package was debianized by ...") is None


# --- scenes ----------------------------------------------------------------------------------

def _blob(color, w=60, h=80) -> Image.Image:
    img = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    yy, xx = np.mgrid[:h, :w]
    ellipse = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2 <= 1
    arr = np.zeros((h, w, 4), np.uint8)
    arr[ellipse] = (*color, 255)
    img.alpha_composite(Image.fromarray(arr, "RGBA"), ((128 - w) // 2, (128 - h) // 2))
    return img


def test_scene_boxes_match_masks_and_disparity_matches_distances():
    camera = Camera(width=256, height=256, focal_px=320.0)
    items = [SceneItem("dog", _blob((200, 30, 30)), "a"), SceneItem("cow", _blob((30, 200, 30), 90, 50), "b")]
    backgrounds = [Image.new("RGB", (300, 300), (90, 90, 200))]
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(25):
        rgb, disparity, mask, record = make_scene(items, backgrounds, camera, rng)
        assert rgb.size == (256, 256) and disparity.dtype == np.float32 and disparity.shape == (256, 256)
        objects = record["objects"]
        seen += len(objects)
        for obj in objects:
            k = obj["instance"]
            x0, y0, x1, y1 = obj["box"]
            ys, xs = np.nonzero(mask == k)
            assert len(xs) > 0
            # visible pixels lie inside the pasted box; with nothing in front they fill it exactly
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            if k == len(objects):  # pasted last = nearest = never occluded
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
            expected = camera.focal_px * camera.baseline_m / obj["distance_m"]
            np.testing.assert_allclose(disparity[mask == k], expected, rtol=1e-4)
            # the object stands on the ground at its distance: its foot row is that ground row
            foot = record["horizon_y"] + camera.focal_px * camera.height_m / obj["distance_m"]
            assert abs(y1 - foot) <= 1.0
        # empty ground obeys z = f h / (y - horizon)
        free = (mask == 0)
        for obj in record["hidden"]:  # almost fully covered objects: unlabelled, depth kept
            x0, y0, x1, y1 = obj["box"]
            free[y0:y1, x0:x1] = False
        rows = np.arange(256)[:, None] + 0.5 - record["horizon_y"]
        ground = np.broadcast_to(rows > 1, mask.shape) & free
        z = np.minimum(camera.focal_px * camera.height_m / np.maximum(rows, 1e-6), record["far_m"])
        np.testing.assert_allclose(disparity[ground], np.broadcast_to(
            camera.focal_px * camera.baseline_m / z, mask.shape)[ground], rtol=1e-4)
        distances = [o["distance_m"] for o in objects]
        assert distances == sorted(distances, reverse=True)  # pasted far to near
    assert seen >= 25


# --- a later source never moves an earlier recording ----------------------------------------

def _fake_source(root: Path, key: str, files: dict[str, bytes]):
    from pretrain.pocket.sources import SOURCE_BY_KEY, FetchedSource
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return FetchedSource(SOURCE_BY_KEY[key], "", "", root)


def test_adding_a_later_cohort_source_keeps_every_earlier_clip_in_its_split(tmp_path):
    import zipfile

    from pretrain.pocket.categories import select
    from pretrain.pocket.data import build_audio
    from pretrain.pocket.sources import SOURCE_BY_KEY

    assert SOURCE_BY_KEY["0ad"].cohort > SOURCE_BY_KEY["minetest"].cohort == 0
    sounds = "usr/share/games/minetest/games/minetest_game/mods/default/sounds/"
    grounds = ("dirt", "grass", "gravel", "hard", "ice", "metal", "sand", "snow", "wood", "glass")
    minetest = {f"{sounds}default_{g}_footstep.1.wav": _wav(synthetic_take(100 + k))
                for k, g in enumerate(grounds)}
    first = _fake_source(tmp_path / "minetest", "minetest", minetest)
    # 0 A.D. keeps its clips in one zip: five new takes, and one exact copy of a minetest clip
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for k in range(5):
            z.writestr(f"audio/actor/singlesteps/fs_ground{k}_1.wav", _wav(synthetic_take(200 + k)))
        z.writestr("audio/actor/singlesteps/fs_copy_1.wav", minetest[f"{sounds}default_sand_footstep.1.wav"])
        z.writestr("audio/actor/fauna/animal/lion_1.wav", _wav(synthetic_take(300)))  # no category
    later = _fake_source(tmp_path / "0ad", "0ad",
                         {"usr/share/games/0ad/mods/public/public.zip": archive.getvalue()})

    cats = select(["footsteps"])
    before = build_audio({"minetest": first}, cats, tmp_path / "before", seed=0, log=[])
    after = build_audio({"minetest": first, "0ad": later}, cats, tmp_path / "after", seed=0, log=[])

    keep = ("path", "recording", "split")
    assert {r["split"] for r in before} == {"train", "val", "test"}
    old = {r["path"]: tuple(r[k] for k in keep) for r in before}
    new = {r["path"]: tuple(r[k] for k in keep) for r in after}
    assert {p: new[p] for p in old} == old  # same recordings, same splits
    added = [r for r in after if r["path"] not in old]
    assert len(added) == 5 and all(r["source"].startswith("0ad:") and "public.zip!audio/" in r["source"]
                                   for r in added)
    assert {r["license"] for r in added} == {"CC-BY-SA-3.0"}
    assert all(abs(float(r["duration"]) - 1.6) < 0.2 for r in added)  # decoded from inside the zip
    audit = read_manifest(tmp_path / "after" / "manifests" / "recordings.csv")
    copy = [a for a in audit if a["path"].endswith("fs_copy_1.wav")]
    assert len(copy) == 1 and copy[0]["status"].startswith("dropped: exact copy of minetest:")


def test_the_unlabelled_pool_holds_no_labelled_clip_nor_a_copy_or_namesake_of_a_held_out_one(tmp_path):
    from pretrain.pocket.categories import select
    from pretrain.pocket.data import build_audio
    from pretrain.pocket.pool import POOL_COLUMNS, PoolError, build_pool, load_pool

    sounds = "usr/share/games/minetest/games/minetest_game/mods/default/sounds/"
    grounds = ("dirt", "grass", "gravel", "hard", "ice", "metal", "sand", "snow", "wood", "glass")
    minetest = {f"{sounds}default_{g}_footstep.1.wav": _wav(synthetic_take(100 + k))
                for k, g in enumerate(grounds)}
    minetest[f"{sounds}default_dig_crumbly.wav"] = _wav(synthetic_take(400))  # no category names it
    first = _fake_source(tmp_path / "minetest", "minetest", minetest)
    data = tmp_path / "data"
    with pytest.raises(PoolError, match="python -m pretrain.pocket data"):
        build_pool(data, {"minetest": first}, progress=False)
    rows = build_audio({"minetest": first}, select(["footsteps"]), data, seed=0, log=[])
    held = next(r for r in rows if r["split"] == "test")
    held_file = held["source"].split(":", 1)[1]
    stem = held_file.rsplit("/", 1)[1].split(".")[0]
    other = _fake_source(tmp_path / "hedgewars", "hedgewars", {
        "usr/share/games/hedgewars/Data/Sounds/whoosh.wav": minetest[held_file],  # a copy, renamed
        f"usr/share/games/hedgewars/Data/Sounds/{stem}.2.wav": _wav(synthetic_take(500)),  # its name
        "usr/share/games/hedgewars/Data/Sounds/steps.ogg": b"",  # a category's file (footsteps)
        "usr/share/games/hedgewars/Data/Sounds/engine.wav": _wav(synthetic_take(600)),
    })
    log: list[str] = []
    pool = build_pool(data, {"minetest": first, "hedgewars": other}, log=log, progress=False)
    assert sorted(r["source"] for r in pool) == [
        "hedgewars:usr/share/games/hedgewars/Data/Sounds/engine.wav", f"minetest:{sounds}default_dig_crumbly.wav"]
    assert read_manifest(data / "manifests" / "audio_unlabelled.csv", POOL_COLUMNS) == pool
    assert all((data / r["path"]).is_file() and r["license"] for r in pool)
    assert any("hedgewars: 3 files no category names, 1 kept, 2 left out" in line for line in log)
    assert len(load_pool(data)) == 2
    assert "engine.wav" in (data / "ATTRIBUTION.md").read_text().split("## Unlabelled audio files")[1]


# --- the real thing, one small package -----------------------------------------------------

@pytest.mark.slow
def test_real_download_of_sound_icons_is_pinned_and_collectable(tmp_path):
    from pretrain.pocket.categories import CATEGORIES, select
    from pretrain.pocket.collect import collect_clips
    from pretrain.pocket.sources import fetch_sources, sha256_of

    fetched = fetch_sources(["sound-icons"], tmp_path)
    f = fetched["sound-icons"]
    assert sha256_of(Path(f.artifact)) == f.source.sha256
    clips, _ = collect_clips(fetched, select(["piano", "xylophone"]), CATEGORIES)
    labels = {c.category for c in clips}
    assert labels == {"piano", "xylophone"}
    wave = A.decode(clips[0].load(), clips[0].path)
    assert wave.ndim == 1 and len(wave) > 1000
    again = fetch_sources(["sound-icons"], tmp_path)  # cached: verified, not re-downloaded
    assert again["sound-icons"].artifact == f.artifact


def test_data_build_without_cairosvg_stops_before_downloading_and_names_the_fix(tmp_path, monkeypatch, capsys):
    from pretrain.pocket.__main__ import main

    monkeypatch.setitem(__import__("sys").modules, "cairosvg", None)  # what `import cairosvg` sees when absent
    cache = tmp_path / "cache"
    assert main(["data", "--out", str(tmp_path / "data"), "--cache", str(cache), "--scenes", "0"]) == 2
    err = capsys.readouterr().err
    assert "cairosvg" in err and "pip install -e" in err and "[train]" in err
    assert not cache.exists()  # nothing was downloaded


def test_trimming_a_clip_shorter_than_one_frame_keeps_it():
    # some game archives hold 3-sample "sounds"; trimming used to crash the build on them
    tiny = np.full(3, 0.5, dtype=np.float32)
    assert np.array_equal(A.trim_silence(tiny), tiny)


# --- more emoji drawings: Iconify sets, split in their own cohort ----------------------------

def _iconify_set() -> dict:
    # IconifyJSON as the @iconify-json packages ship it: a shared viewBox, per-icon overrides, aliases
    return {"prefix": "toy", "width": 36, "height": 36,
            "icons": {"dog": {"body": '<circle cx="18" cy="18" r="12" fill="#a52"/>'},
                      "wide": {"body": '<rect x="0" y="10" width="72" height="16" fill="#25a"/>', "width": 72}},
            "aliases": {"dog-2": {"parent": "dog"}, "flipped": {"parent": "dog", "hFlip": True}}}


def test_iconify_icons_render_through_aliases_with_their_own_view_box():
    from pretrain.pocket.images import (OBJECT_PX, SIZE, ImageRenderError, iconify_icon_name, iconify_svg,
                                        render_svg)

    icons = _iconify_set()
    chars = {"1f415": "dog", "1f436": "dog-2", "1f43a": "wolf"}
    assert iconify_icon_name(icons, chars, "1F415") == "dog"
    assert iconify_icon_name(icons, chars, "1F436") == "dog-2"  # an alias counts
    assert iconify_icon_name(icons, chars, "1F43A") is None  # named, but not in this set
    assert iconify_icon_name(icons, chars, "1F408") is None  # not named at all

    dog = np.asarray(render_svg(iconify_svg(icons, "dog-2"), name="toy:dog-2"))
    assert dog.shape == (SIZE, SIZE, 4)
    ys, xs = np.nonzero(dog[..., 3] > 8)
    assert max(xs.max() - xs.min(), ys.max() - ys.min()) + 1 == pytest.approx(OBJECT_PX, abs=2)
    assert tuple(dog[SIZE // 2, SIZE // 2, :3]) == pytest.approx((0xAA, 0x55, 0x22), abs=3)
    wide = np.asarray(render_svg(iconify_svg(icons, "wide"), name="toy:wide"))
    ys, xs = np.nonzero(wide[..., 3] > 8)
    # the icon's own width (72) is its viewBox: the bar is whole, 72 x 16 -> about 4.5 : 1
    assert (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1) == pytest.approx(4.5, rel=0.1)
    with pytest.raises(ImageRenderError, match=r"toy:flipped.*hFlip"):
        iconify_svg(icons, "flipped")
    with pytest.raises(ImageRenderError, match="toy:cat: no such icon"):
        iconify_svg(icons, "cat")


def test_adding_later_cohort_drawings_keeps_every_earlier_drawing_in_its_split():
    from PIL import Image as PILImage

    from pretrain.pocket.data import image_split
    from pretrain.pocket.images import RenderedImage

    blank = PILImage.new("RGBA", (4, 4))

    def render(cat, group, cohort=0, style="noto"):
        return RenderedImage(cat, style, group, group, "src", "path", "lic", blank, cohort=cohort)

    earlier = ([render("dog", f"noto:{i}") for i in range(6)] + [render("dog", "stamp:a", style="stamp"),
               render("dog", "stamp:b", style="stamp")] + [render("owl", f"noto:{i}") for i in range(2)])
    later = [render(cat, f"{artist}:{i}", cohort=1, style=artist)
             for cat in ("dog", "owl") for artist in ("twemoji", "fluent", "emojione") for i in range(3)]
    before = image_split(earlier, seed=0)
    after = image_split(earlier + later, seed=0)
    assert {k: after[k] for k in before} == before
    # the later drawings are split among themselves: each held-out side gets some of them
    for cat in ("dog", "owl"):
        sides = [after[(cat, r.group)] for r in later if r.category == cat]
        assert {"train", "val", "test"} <= set(sides)
    assert image_split(earlier + later, seed=0) == after  # deterministic
