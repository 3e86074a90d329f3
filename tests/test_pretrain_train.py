"""Training against a frozen tiny CLIP on real files: it learns, the cache works, runs resume exactly,
mismatches fail before training."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import encoders
import pretrain
from encoders.config import ConfigError
from pretrain_fixtures import TINY_AUDIO_CONVNET, run_config, tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_world(tmp_path_factory.getbasetemp() / "pretrain_world")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def zero_shot(encoder_dir, world, **kw):
    rep = pretrain.evaluate(encoder_dir, world["train"], teacher={"model": f"local-dir:{world['clip_a']}",
                                                                 "space": "tiny-clip-a"},
                            shots=(), progress=False, **kw)
    return rep["zero-shot top-1"]


def weights(encoder_dir):
    return load_file(str(encoder_dir / "audio.safetensors"))


def test_loss_falls_and_zero_shot_rises_well_above_chance(world, tmp_path):
    untrained = pretrain.train(run_config(world, tmp_path / "untrained", train={"steps": 0}))
    before = zero_shot(untrained.encoder_dir, world)
    result = pretrain.train(run_config(world, tmp_path / "run"))
    losses = [float(r["loss"]) for r in result.history]
    assert result.step == 100 and not result.interrupted
    assert losses[-1] < losses[0] - 0.3, losses
    after = zero_shot(result.encoder_dir, world)
    print(f"zero-shot on the training clips: {before.value:.2f} untrained -> {after.value:.2f} trained "
          f"(chance {after.chance:.2f})")
    assert after.chance == pytest.approx(0.25)
    assert after.value >= 3 * after.chance  # 4 classes: >= 75%
    assert after.value > before.value
    # the saved encoder names the teacher's space and reloads in a fresh registry entry
    cfg = json.loads((result.encoder_dir / "config.json").read_text())
    assert cfg["space"] == "tiny-clip-a"
    assert json.loads((result.encoder_dir / "space.json").read_text())["dim"] == 32
    enc = pretrain.load_encoder(result.encoder_dir)
    assert enc.space.name == "tiny-clip-a" and enc.embed_dim == 32
    # metrics log and plot
    rows = list(csv.DictReader(open(result.metrics_csv)))
    assert [int(r["step"]) for r in rows] == list(range(10, 101, 10))
    assert result.plot is not None and result.plot.stat().st_size > 10_000


def test_cached_teacher_trains_and_cache_resumes_after_a_failure(world, tmp_path):
    # explicit pairs, 3 views per image (center + 2 crops)
    bad_image = tmp_path / "images_copy"
    shutil.copytree(world["images"], bad_image)
    pairs = tmp_path / "pairs.csv"
    rows = list(csv.DictReader(open(world["pairs"])))
    with open(pairs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "image", "label"])
        for r in rows:
            w.writerow([str(world["base"] / r["audio"]), str(tmp_path / r["image"].replace("images/", "images_copy/")),
                        r["label"]])
    broken = sorted(bad_image.glob("*.png"))[-1]
    good_bytes = broken.read_bytes()
    broken.write_bytes(b"not a png")
    cfg = run_config(world, tmp_path / "run", data={"train": str(pairs), "images": None, "on_bad_file": "fail"},
                     loss={"positives": "pairs"}, teacher={"cache": str(tmp_path / "cache")})
    run_cfg = pretrain.load_config(cfg, check_files=False)
    with pytest.raises(pretrain.data.DataError, match=broken.name):
        pretrain.cache_teacher(run_cfg, views=3, chunk=4, progress=False)
    done = sorted(p.name for p in (tmp_path / "cache" / "parts").glob("*.npy"))
    assert done == ["part-000000.npy", "part-000001.npy", "part-000002.npy"]  # 12 of 16 images
    broken.write_bytes(good_bytes)
    pretrain.cache_teacher(run_cfg, views=3, chunk=4, progress=False)  # resumes at chunk 3
    fresh = pretrain.cache_teacher(run_cfg, out=tmp_path / "cache_fresh", views=3, chunk=4, progress=False)
    a = np.load(tmp_path / "cache" / "embeddings.npy")
    b = np.load(fresh / "embeddings.npy")
    assert a.shape == (16, 3, 32) and np.array_equal(a, b)
    assert not np.allclose(a[:, 0], a[:, 1])  # the crops differ from the center view
    result = pretrain.train(cfg)
    losses = [float(r["loss"]) for r in result.history]
    assert losses[-1] < losses[0] - 0.3
    assert zero_shot(result.encoder_dir, world).value >= 0.75


def _stop_at(step):
    return lambda trainer, stats: stats["step"] == step


@pytest.mark.parametrize("student", ["vit", "convnet"])
def test_stopped_run_resumes_to_identical_weights(world, tmp_path, student):
    extra = {"train": {"steps": 24, "checkpoint_every": 10}}
    if student == "convnet":  # BatchNorm buffers must resume too
        extra["student"] = {"model": json.loads(json.dumps(TINY_AUDIO_CONVNET))}
    else:  # stochastic depth draws from the RNG that the checkpoint restores
        extra["student"] = {"overrides": {"drop_path": 0.2}}
    full = pretrain.train(run_config(world, tmp_path / "full", **extra))
    cfg = run_config(world, tmp_path / "split", **extra)
    first = pretrain.train(cfg, callback=_stop_at(13))
    assert first.interrupted and first.step == 13
    with pytest.raises(ConfigError, match="--resume"):
        pretrain.train(cfg)  # never silently overwrites a run
    second = pretrain.train(cfg, resume=True)
    assert second.step == 24 and not second.interrupted
    a, b = weights(full.encoder_dir), weights(second.encoder_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [int(r["step"]) for r in csv.DictReader(open(second.metrics_csv))]
    assert steps == [10, 20, 24]


def test_dimension_mismatch_fails_before_training_naming_both_spaces(world, tmp_path):
    # a 16-d student (space test-16) cannot start from its weights against the 32-d teacher
    model = encoders.create({**TINY_AUDIO_CONVNET, "space": "test-16"}, checkpoint=False)
    encoders.save_modalities(model, tmp_path / "student16")
    cfg = run_config(world, tmp_path / "run", student={"model": str(tmp_path / "student16")})
    with pytest.raises(ConfigError) as err:
        pretrain.Trainer(cfg)
    assert "test-16 (16-d)" in str(err.value) and "tiny-clip-a (32-d)" in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()
    # a cache written by another teacher is refused too
    cfg = run_config(world, tmp_path / "run_b", data={"train": str(world["pairs"]), "images": None},
                     loss={"positives": "pairs"},
                     teacher={"model": f"local-dir:{world['clip_b']}", "space": "tiny-clip-b",
                              "cache": str(tmp_path / "cache_b")})
    pretrain.cache_teacher(pretrain.load_config(cfg, check_files=False), progress=False)
    cfg["teacher"] = {"model": f"local-dir:{world['clip_a']}", "space": "tiny-clip-a", "cache": str(tmp_path / "cache_b")}
    with pytest.raises(ConfigError, match="rebuild the cache"):
        pretrain.Trainer(cfg)


def test_cli_train_writes_encoder_metrics_and_plot(world, tmp_path, capsys):
    import yaml

    from pretrain.__main__ import main

    cfg = run_config(world, tmp_path / "run", train={"steps": 6, "log_every": 2})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--set", "optim.lr=1e-3"]) == 0
    assert "step 6/6" in capsys.readouterr().out
    for name in ("encoder/audio.safetensors", "encoder/config.json", "encoder/space.json", "encoder/training.json",
                 "metrics.csv", "metrics.png", "checkpoints/last.pt", "config.json"):
        assert (tmp_path / "run" / name).exists(), name
    assert json.loads((tmp_path / "run" / "config.json").read_text())["optim"]["lr"] == 1e-3
    assert main(["train", "--config", str(tmp_path / "run.yaml")]) == 2  # exists: needs --resume
    assert "already holds a run" in capsys.readouterr().err


def test_bf16_autocast_on_cpu_with_tensorboard_log(world, tmp_path):
    result = pretrain.train(run_config(world, tmp_path / "run", train={"steps": 3, "precision": "bf16", "log_every": 1,
                                                                       "tensorboard": True}))
    assert result.step == 3 and all(np.isfinite(float(r["loss"])) for r in result.history)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((result.encoder_dir / "training.json").read_text())["config"]["train"]["precision"] == "bf16"


def test_a_live_training_curve_replaces_the_old_one_only_when_finished(tmp_path):
    """LiveCSV (the pocket stages' curves): rows are readable in <path>.partial while the run goes;
    the previous file is replaced on finish() and left as it was by a run that stops first."""
    from pretrain.checkpoint import LiveCSV

    old = tmp_path / "metrics.csv"
    old.write_text("step,loss\n1,9.0\n")
    stopped = LiveCSV(old)
    stopped.write({"step": 1, "loss": 0.5})
    assert list(csv.DictReader(open(stopped.partial))) == [{"step": "1", "loss": "0.5"}]
    stopped.close()  # a run stopped here: no finish()
    assert old.read_text() == "step,loss\n1,9.0\n"

    done = LiveCSV(old, ["step", "loss"], extrasaction="ignore")
    for step in (1, 2):
        done.write({"step": step, "loss": 1 / step, "lr": 0.1}, flush=False)
    assert done.finish() == old and not done.partial.exists()
    assert [r["loss"] for r in csv.DictReader(open(old))] == ["1.0", "0.5"]
