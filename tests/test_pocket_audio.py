"""The shipped pocket audio and depth encoders: emergent zero-shot on held-out examples.

Fast tests use the shipped weights (encoders/weights/pocket) and the held-out examples in
tests/data/pocket/{audio,depth} (chosen by a fixed rule before the final models were trained; see
tests/data/pocket/ATTRIBUTION.md). ``-m slow`` reruns a short training on a tiny subset of the
pocket data (needs it: REBIND_POCKET_DATA, default /work/data/pocket).
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import encoders
from encoders.factory import WEIGHTS_DIR

POCKET = WEIGHTS_DIR / "pocket"
EXAMPLES = Path(__file__).parent / "data" / "pocket"
POCKET_DATA = Path(os.environ.get("REBIND_POCKET_DATA", "/work/data/pocket"))

pytestmark = pytest.mark.skipif(not (POCKET / "audio.safetensors").exists(),
                                reason="the pocket audio/depth weights are not in this checkout")


def _examples(modality: str, suffix: str) -> list[Path]:
    files = sorted((EXAMPLES / modality).glob(f"*__*{suffix}"))
    assert files, f"no {modality} examples in {EXAMPLES / modality}"
    return files


def _label(path: Path) -> str:
    return path.name.split("__")[0].replace("_", " ")


def test_shipped_audio_and_depth_encoders_load_by_default_and_are_small():
    config = encoders.get_config("pocket")
    assert {"vision", "text", "audio", "depth"} <= set(config["modalities"])
    folder_config = (POCKET / "config.json").read_text()
    for modality in ("audio", "depth"):
        assert f'"{modality}"' in folder_config  # the weights folder's config lists every shipped modality
        assert (POCKET / f"{modality}.safetensors").stat().st_size < 5e6
        enc = encoders.resolve_encoder(None, modality)
        assert enc.space.name == "pocket" and enc.embed_dim == 256
    clip = _examples("audio", ".wav")[0]
    emb = encoders.embed_audio(str(clip))
    assert emb.shape == (1, 256) and torch.allclose(emb.norm(dim=-1), torch.ones(1), atol=1e-5)
    depth = encoders.embed_depth(np.load(_examples("depth", ".npy")[0]))
    assert depth.shape == (1, 256) and torch.isfinite(depth).all()


def test_adapters_embed_puts_a_sound_in_the_pocket_space():
    import adapters

    dog = next(p for p in _examples("audio", ".wav") if _label(p) == "dog")
    emb = adapters.embed(str(dog), "audio")
    assert emb.space.name == "pocket" and tuple(emb.vectors.shape) == (1, 256)


def test_emergent_zero_shot_on_shipped_heldout_clips_is_well_above_chance():
    from pretrain.pocket.evaluate import audio_zero_shot, heldout_sounds

    sounds = heldout_sounds(EXAMPLES, "test")
    assert len(sounds.labels) >= 10 and "dog" in sounds.labels
    result = audio_zero_shot(sounds)  # all 41 pocket classes are candidates, through the TEXT tower
    assert result["classes"] == 41
    # measured on these clips when they were shipped: see ATTRIBUTION.md; bars leave a margin
    assert result["top1"] >= 5 * result["chance_top1"], result
    assert result["top5"] >= 3 * result["chance_top5"], result


def test_depth_encoder_classifies_shipped_heldout_disparity_crops_above_chance():
    from pretrain.pocket.evaluate import zero_shot
    from pretrain.pocket.prompts import CLASS_NAMES, class_text_embeddings

    files = _examples("depth", ".npy")
    emb = encoders.embed_depth([np.load(f) for f in files])
    result = zero_shot(emb, [_label(f) for f in files], list(CLASS_NAMES), class_text_embeddings(CLASS_NAMES))
    assert result["top5"] >= 3 * result["chance_top5"], result


def test_depth_encoder_reads_real_disparity_with_unknown_pixels():
    import skimage.data

    _, _, disparity = skimage.data.stereo_motorcycle()
    assert np.isinf(disparity).any()  # unknown pixels are inf, not NaN
    emb = encoders.embed_depth(disparity)
    assert torch.isfinite(emb).all() and emb.shape == (1, 256)


@pytest.mark.slow
@pytest.mark.skipif(not (POCKET_DATA / "manifests" / "audio_train.csv").exists(), reason="no pocket data")
def test_short_training_on_a_tiny_subset_learns(tmp_path):
    """pretrain's Trainer with the pocket objective: loss falls, held-out-free train accuracy rises."""
    import csv
    import shutil

    from pretrain.pocket.audio_encoder import AudioRecipe, train_one

    # a tiny pocket world: 4 categories' train clips and pictures
    keep = {"dog", "cow", "drums", "bird"}
    tiny = tmp_path / "data"
    (tiny / "manifests").mkdir(parents=True)
    for name in ("audio_train.csv", "images_train.csv"):
        with open(POCKET_DATA / "manifests" / name, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["label"] in keep]
        with open(tiny / "manifests" / name, "w", newline="") as f:
            w = csv.DictWriter(f, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        for r in rows:
            (tiny / r["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(POCKET_DATA / r["path"], tiny / r["path"])
    recipe = AudioRecipe(teacher=f"rebind:{POCKET}", steps=60, batch_size=16, warmup_steps=5, eval_every=0, lr=3e-3,
                         teacher_views=2, threads=min(2, torch.get_num_threads()), min_rows_per_class=8)
    text = torch.randn(4, 256)
    run = train_one(tiny, tmp_path / "work", recipe, "prototype", text, sorted(keep), None, progress=False)
    losses = [float(r["loss"]) for r in run.history]
    accs = [float(r["acc"]) for r in run.history]
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses
    assert np.mean(accs[-2:]) > np.mean(accs[:2]) + 0.2, accs
    assert (run.trainer.out / "encoder" / "audio.safetensors").exists()


def test_card_counts_heldout_recordings_and_thin_categories_from_the_manifest(tmp_path):
    from pretrain.pocket.audio_encoder import heldout_summary
    from pretrain.pocket.manifests import AUDIO_COLUMNS

    rows = [("dog", "dog/a"), ("dog", "dog/a"), ("cow", "cow/a"), ("cow", "cow/b"), ("cow", "cow/c"),
            ("rain", "rain/a")]
    (tmp_path / "manifests").mkdir()
    lines = [",".join(AUDIO_COLUMNS)]
    for i, (label, recording) in enumerate(rows):
        values = {"path": f"audio/{label}/{i}.wav", "label": label, "recording": recording}
        lines.append(",".join(values.get(c, "x") for c in AUDIO_COLUMNS))
    (tmp_path / "manifests" / "audio_test.csv").write_text("\n".join(lines) + "\n")
    assert heldout_summary(tmp_path, "test") == {"clips": 6, "recordings": 5, "thin": 2,
                                                 "dog_clips": 2, "dog_recordings": 1}


def _ssl_setup(tmp_path, steps):
    from pretrain.pocket.audio_encoder import AudioRecipe, audio_modality_config
    from tests.test_pocket_data import synthetic_take

    recipe = AudioRecipe(channels=[8, 16], strides=[1, 2], fc=[32], ssl_steps=steps, ssl_batch=8,
                         warmup_steps=5, threads=1, mix_prob=0.0)
    waves = [synthetic_take(k, rate=16000) for k in range(24)]
    torch.manual_seed(0)
    config = {"name": "ssl_test", "space": "pocket", "modalities": {"audio": audio_modality_config(recipe)}}
    return recipe, waves, encoders.create(config, checkpoint=False)["audio"]


def _pair_accuracy(student, waves, recipe, draws=4):
    """Mean over a few fresh draws of views: one draw of 48 views moves by ~0.1."""
    from pretrain.pocket.audio_ssl import ViewMaker, nt_xent

    student.eval()
    accuracy = []
    for seed in range(99, 99 + draws):
        views = ViewMaker(waves, recipe, np.random.default_rng(seed))
        with torch.no_grad():
            z = torch.nn.functional.normalize(student(views.pairs(np.arange(len(waves))), output="raw"), dim=-1)
        accuracy.append(float(nt_xent(z, recipe.ssl_temperature)[1]))
    student.train()
    return float(np.mean(accuracy))


def test_self_supervised_start_learns_to_pair_views_of_a_clip_and_resumes(tmp_path):
    from pretrain.pocket.audio_ssl import pretrain_on_pool

    recipe, waves, student = _ssl_setup(tmp_path, steps=200)
    before = _pair_accuracy(student, waves, recipe)
    summary = pretrain_on_pool(student, waves, recipe, tmp_path / "ssl", progress=False, log=lambda *_: None)
    after = _pair_accuracy(student, waves, recipe)
    assert summary["pool_clips"] == 24 and summary["steps"] == 200
    assert after >= before + 0.15, (before, after)  # 48 views of 24 similar synthetic takes
    # the same recipe again resumes from the finished checkpoint instead of retraining
    trained = {k: v.clone() for k, v in student.state_dict().items()}
    _, _, fresh = _ssl_setup(tmp_path, steps=200)
    messages: list[str] = []
    again = pretrain_on_pool(fresh, waves, recipe, tmp_path / "ssl", progress=False, log=messages.append)
    assert any("resuming at step 200 of 200" in m for m in messages)
    assert again["minutes"] == pytest.approx(summary["minutes"], rel=0.1)  # the whole run, not the 0 s resumed tail
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in trained.items())


def test_ssl_start_does_not_resume_a_state_of_another_recipe_or_of_older_code(tmp_path, monkeypatch):
    import dataclasses

    from pretrain.pocket import audio_ssl

    recipe, waves, student = _ssl_setup(tmp_path, steps=10)
    with monkeypatch.context() as older_code:  # the same recipe, saved by code whose views or init differ
        older_code.setattr(audio_ssl, "SSL_VERSION", "views=stretched,init=kaiming")
        audio_ssl.pretrain_on_pool(student, waves, recipe, tmp_path / "ssl", progress=False, log=lambda *_: None)
    for changed in (recipe, dataclasses.replace(recipe, ssl_lr=recipe.ssl_lr / 2)):
        messages: list[str] = []
        _, _, fresh = _ssl_setup(tmp_path, steps=10)
        audio_ssl.pretrain_on_pool(fresh, waves, changed, tmp_path / "ssl", progress=False, log=messages.append)
        assert not any("resuming" in m for m in messages), messages


def test_ssl_without_a_pool_names_the_command_that_adds_it(tmp_path):
    from pretrain.pocket.pool import PoolError, load_pool

    with pytest.raises(PoolError, match="python -m pretrain.pocket pool --data"):
        load_pool(tmp_path)


def test_a_run_stopped_by_a_signal_stops_the_stage_instead_of_evaluating_and_shipping_it():
    # pretrain's Trainer stops cleanly on SIGTERM and returns; the stage used to evaluate the truncated
    # model, train the next seed and write it to the weights folder
    from pretrain.pocket.audio_encoder import run_with_curves
    from pretrain.train import TrainResult

    class StoppedTrainer:  # what pretrain's Trainer returns after SIGTERM at step 347 of 700
        step_num, total_steps = 347, 700

        def run(self, callback):
            return TrainResult(Path("run"), None, 347, 700, 1.0, "pocket", Path("run/metrics.csv"), None,
                               interrupted=True, signal=15)

    evaluated = []
    with pytest.raises(KeyboardInterrupt, match="audio emergent_seed0: stopped by signal 15 at step 347 of 700"):
        run_with_curves(StoppedTrainer(), 0, lambda step: evaluated.append(step) or {}, "audio emergent_seed0", print)
    assert evaluated == []
