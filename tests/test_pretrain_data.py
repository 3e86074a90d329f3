"""Data: manifests (ESC-50 layout), bad files, batch construction across processes, augmentation,
webdataset shards (written from a manifest, trained on, resumed exactly)."""
import csv
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import encoders
import pretrain
from pretrain import data as D
from pretrain.augment import AudioBatchTransform, collate_clips, sample_audio_clip
from pretrain.config import AugmentConfig
from pretrain_fixtures import CLASSES, run_config, tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_world(tmp_path_factory.getbasetemp() / "pretrain_world")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_esc50_csv_is_a_labelled_manifest(world):
    rows = D.load_rows(world["esc"], world["audio"], "audio", require_label=True)
    assert len(rows) == 24 and {r.label for r in rows} == set(CLASSES)
    assert all(r.path.exists() and r.path.parent == world["audio"] for r in rows)
    assert rows[0].fields["fold"] in ("1", "2")


def test_jsonl_manifest_and_missing_column_named(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "label": "dog"}\n\n{"audio": "b.wav", "label": null}\n')
    rows = D.load_rows(tmp_path / "m.jsonl", None, "audio")
    assert [r.label for r in rows] == ["dog", None] and rows[0].path == tmp_path / "a.wav"
    (tmp_path / "m.csv").write_text("sound,tag\nx.wav,dog\n")
    with pytest.raises(D.DataError, match=r"no path column .*'sound', 'tag'"):
        D.load_rows(tmp_path / "m.csv", None, "audio")


def test_training_augmentation_without_jitter_equals_evaluation_preprocessing(world):
    """With augmentation off, a training clip is exactly the evaluation preprocessing of that clip."""
    fb = encoders.AudioFbankConfig(clips=1)
    wav = D._decode_audio(world["audio"] / "dog_0.wav", 16000)[: 2 * 16000]
    reference = encoders.AudioPreprocessor(fb)([(wav, 16000)])[:, 0]
    clip = sample_audio_clip(wav[None], fb, None, np.random.default_rng(0))
    ours = AudioBatchTransform(fb)(**collate_clips([clip]))
    assert ours.shape == reference.shape == (1, 1, 128, 204)
    assert torch.equal(ours, reference)
    # with augmentation: masks hit the drawn mel bins, output shape and padding value unchanged
    aug = AugmentConfig(freq_mask=12, temporal_jitter=True)
    clips = [sample_audio_clip(wav[None], fb, aug, np.random.default_rng(s)) for s in range(8)]
    x = AudioBatchTransform(fb)(**collate_clips(clips))
    assert x.shape == (8, 1, 128, 204) and torch.isfinite(x).all()
    for i, c in enumerate(clips):
        start, width = c.mask[0], c.mask[1]
        if width:
            assert (x[i, 0, start: start + width] == 0).all()


def test_batches_of_two_processes_concatenate_to_the_one_process_batch(world, tmp_path):
    cfg = pretrain.load_config(run_config(world, tmp_path / "r"))
    teacher = pretrain.load_teacher(cfg.teacher)
    student = encoders.create(cfg.student.model, checkpoint=False)["audio"]
    io = D.AudioIO(student.preprocessor.config, cfg.augment)
    data = D.ManifestData(cfg, io, D.LiveTargets(teacher, True, [0.5, 1.0], True), D.BadFiles())
    one = D.StepBatches(data, 8, 0, 5)
    two = [D.StepBatches(data, 8, 0, 5, rank=r, world=2) for r in range(2)]
    for step in (0, 3, 4):  # step 3 = second epoch (24 clips / 8 = 3 steps per epoch)
        full, halves = one[step], [two[r][step] for r in range(2)]
        for key in ("lengths", "stretch", "mask"):
            assert torch.equal(full["x"][key], torch.cat([h["x"][key] for h in halves])), key
        rows = [row for h in halves for row, n in zip(h["x"]["wave"], h["x"]["lengths"])]
        for row, ref, n in zip(rows, full["x"]["wave"], full["x"]["lengths"]):  # padded to each batch's longest
            assert torch.equal(row[:n], ref[:n])
        assert torch.equal(full["images"], torch.cat([h["images"] for h in halves]))
        assert torch.equal(full["labels"], torch.cat([h["labels"] for h in halves]))
    assert not torch.equal(one[0]["labels"], one[3]["labels"])  # a new permutation each epoch


def test_bad_files_reported_with_path_and_reason_then_skipped_or_fatal(world, tmp_path, caplog):
    shutil.copytree(world["audio"], tmp_path / "audio")
    (tmp_path / "audio" / "dog_1.flac").write_bytes(b"\x00" * 64)  # corrupt
    manifest = tmp_path / "train.csv"
    rows = list(csv.DictReader(open(world["train"])))
    rows.append({"audio": "audio/missing.wav", "label": "dog"})
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, ["audio", "label"])
        w.writeheader()
        w.writerows(rows)
    cfg = run_config(world, tmp_path / "run", data={"train": str(manifest), "root": str(tmp_path)},
                     train={"steps": 3})
    with caplog.at_level(logging.WARNING, logger="pretrain"):
        result = pretrain.train(cfg)
    assert result.bad_files == 2 and result.step == 3
    report = (tmp_path / "run" / "bad_files.txt").read_text()
    assert "missing.wav\tfile does not exist" in report
    assert "dog_1.flac\t" in report and "could not decode" in report
    assert "missing.wav" in caplog.text and "dog_1.flac" in caplog.text
    cfg = run_config(world, tmp_path / "run2", data={"train": str(manifest), "root": str(tmp_path),
                                                      "on_bad_file": "fail"}, train={"steps": 3})
    with pytest.raises(D.DataError, match=r"missing\.wav: file does not exist"):
        pretrain.train(cfg)


def test_webdataset_shards_train_and_resume_exactly(world, tmp_path):
    shards = pretrain.write_shards(world["pairs"], tmp_path / "shards", maxcount=6, progress=False)
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert len(shards) == 4 and index["total"] == 24 and index["classes"] == sorted(CLASSES)
    import webdataset as wds

    sample = next(iter(wds.WebDataset(str(shards[0]), shardshuffle=False, empty_check=False)))
    assert {"audio.wav", "image.png", "json"} <= set(sample) or {"audio.flac", "image.png", "json"} <= set(sample) \
        or {"audio.ogg", "image.png", "json"} <= set(sample)

    def cfg(out):
        return run_config(world, out, data={"train": str(tmp_path / "shards"), "images": None, "preload": False,
                                            "shuffle_buffer": 8, "num_workers": 2},
                          loss={"positives": "pairs"}, teacher={"cache": str(tmp_path / "cache")},
                          train={"steps": 12, "batch_size": 8, "log_every": 2, "checkpoint_every": 4})

    pretrain.cache_teacher(pretrain.load_config(cfg(tmp_path / "x"), check_files=False), views=2, progress=False)
    assert json.loads((tmp_path / "cache" / "meta.json").read_text())["images"] == 24  # keyed by sample
    full = pretrain.train(cfg(tmp_path / "full"))
    assert full.step == 12
    pretrain.train(cfg(tmp_path / "split"), callback=lambda trainer, s: s["step"] == 7)
    split = pretrain.train(cfg(tmp_path / "split"), resume=True)
    a, b = load_file(str(full.encoder_dir / "audio.safetensors")), load_file(str(split.encoder_dir / "audio.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in split.history]


def test_depth_student_trains_from_paired_disparity_maps(world, tmp_path):
    """Any registered modality: a depth ViT (its own preprocessing, no audio augmentation)."""
    rng = np.random.default_rng(0)
    rows = []
    for i, r in enumerate(csv.DictReader(open(world["pairs"]))):
        disparity = rng.random((60, 80)).astype(np.float32) * 40 + 10 * CLASSES.index(r["label"])
        np.save(tmp_path / f"d{i}.npy", disparity)
        rows.append((str(tmp_path / f"d{i}.npy"), str(world["base"] / r["image"]), r["label"]))
    with open(tmp_path / "depth.csv", "w", newline="") as f:
        csv.writer(f).writerows([("depth", "image", "label")] + rows)
    depth = encoders.get_config("imagebind_test")["modalities"]["depth"]
    cfg = run_config(world, tmp_path / "run", student={"model": {"space": "test-32", "modalities": {"depth": depth}},
                                                       "modality": "depth"},
                     data={"train": str(tmp_path / "depth.csv"), "images": None}, loss={"temperature": 0.2},
                     train={"steps": 4, "batch_size": 8, "log_every": 2})
    result = pretrain.train(cfg)
    assert result.step == 4 and np.isfinite(result.loss)
    enc = pretrain.load_encoder(result.encoder_dir, modality="depth")
    assert enc.space.name == "tiny-clip-a" and enc.embed([tmp_path / "d0.npy"]).shape == (1, 32)
