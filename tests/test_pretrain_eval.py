"""Evaluation (zero-shot, retrieval, few-shot, each beside chance) and bridges between CLIP spaces."""
import json
import math

import numpy as np
import pytest
import torch

import pretrain
from encoders.bridge import Bridge
from pretrain.__main__ import main
from pretrain.evaluate import chance_recall, recall_at_k
from pretrain_fixtures import run_config, tiny_world, write_csv, write_images

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_world(tmp_path_factory.getbasetemp() / "pretrain_world")


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    """A tiny audio ViT trained 100 steps against clip_a (space tiny-clip-a)."""
    n = torch.get_num_threads()
    try:
        return pretrain.train(run_config(world, tmp_path_factory.mktemp("eval_run") / "run")).encoder_dir
    finally:
        torch.set_num_threads(n)


def teacher(world, which="a"):
    return {"model": f"local-dir:{world['clip_' + which]}", "space": f"tiny-clip-{which}"}


def test_chance_recall_is_exact():
    rng = np.random.default_rng(0)
    for gallery, relevant, k in ((24, 6, 1), (24, 6, 5), (10, 1, 3), (50, 7, 10)):
        sims = [rng.permutation(gallery)[:k] for _ in range(20000)]
        simulated = np.mean([(s < relevant).any() for s in sims])
        assert chance_recall(relevant, gallery, k) == pytest.approx(simulated, abs=0.01)
    assert chance_recall(6, 24, 5) == pytest.approx(1 - math.comb(18, 5) / math.comb(24, 5))
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    rel = torch.tensor([[False, False, True], [True, False, False]])
    assert recall_at_k(sim, rel, (1, 2)) == {1: (0.0, pytest.approx(1 / 3)), 2: (1.0, pytest.approx(2 / 3))}


def test_esc50_layout_report_puts_chance_beside_every_figure(world, trained, capsys):
    assert main(["eval", "--encoder", str(trained), "--manifest", str(world["esc"]), "--root", str(world["audio"]),
                 "--teacher-model", f"local-dir:{world['clip_a']}", "--teacher-space", "tiny-clip-a",
                 "--images", str(world["image_manifest"]), "--probe-fold", "1", "--shots", "1", "2",
                 "--out", str(world["base"] / "report.json")]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "%" in line]
    assert len(lines) >= 8 and all("chance" in line for line in lines)
    report = json.loads((world["base"] / "report.json").read_text())
    figs = {f["name"]: f for f in report["figures"]}
    assert figs["zero-shot top-1"]["chance"] == pytest.approx(0.25) and figs["zero-shot top-1"]["value"] >= 0.75
    assert figs["text->audio R@1"]["chance"] == pytest.approx(6 / 24)
    assert figs["text->audio R@5"]["chance"] == pytest.approx(1 - math.comb(18, 5) / math.comb(24, 5))
    assert figs["audio->image R@1"]["value"] > figs["audio->image R@1"]["chance"]
    assert figs["1-shot"]["n"] == 12 and figs["1-shot"]["value"] > 0.5  # tested on fold 1 only
    assert report["info"]["classes"] == 4 and report["info"]["space"] == "tiny-clip-a"


def test_text_side_from_a_rebind_encoder_and_space_mismatch(world, trained):
    # the official-checkpoint path: audio + text modalities of one config (here imagebind_test, random)
    rep = pretrain.evaluate("imagebind_test", world["esc"], world["audio"], checkpoint=False,
                            text_encoder="same", shots=(1,), progress=False)
    assert rep.info["space"] == "test-32" and rep["zero-shot top-1"].chance == 0.25
    with pytest.raises(ValueError, match=r"tiny-clip-a \(32-d\) but the target expects test-32 \(32-d\).*bridge"):
        pretrain.evaluate(trained, world["esc"], world["audio"], text_encoder="imagebind_test",
                          text_checkpoint=False, shots=(), progress=False)


def test_bridge_fitted_on_images_carries_audio_into_another_space(world, trained, tmp_path):
    more = write_images(tmp_path / "images", per_class=12, seed=5)  # images only: no audio in the fit
    write_csv(tmp_path / "bridge_images.csv", ["image"], [(f"images/{n}",) for n, _ in more])
    results = {}
    for method in ("procrustes", "ridge"):
        bridge = pretrain.fit_bridge(teacher(world, "a"), teacher(world, "b"), tmp_path / "bridge_images.csv",
                                     method=method, progress=False)
        assert (bridge.source.name, bridge.target.name, tuple(bridge.weight.shape)) == ("tiny-clip-a", "tiny-clip-b",
                                                                                         (32, 24))
        assert bridge.info["heldout"]["image_r1"] > bridge.info["heldout"]["image_r1_chance"]
        path = bridge.save(tmp_path / f"{method}.safetensors")
        loaded = Bridge.load(path)
        assert (loaded.source.name, loaded.target.name, loaded.method) == ("tiny-clip-a", "tiny-clip-b", method)
        report = pretrain.evaluate_bridge(path, trained, world["train"], source_text=teacher(world, "a"),
                                          target_text=teacher(world, "b"), progress=False)
        before, after = [f for f in report.figures if f.name == "zero-shot top-1"]
        results[method] = (before.value, after.value)
        print(f"{method}: held-out image cosine {bridge.info['heldout']['cosine']:.3f}; audio zero-shot "
              f"before {before.value:.2f}, after the bridge {after.value:.2f} (chance {after.chance:.2f})")
    before, after = results["procrustes"]  # the default: angles survive, so the nearest class does
    assert before >= 0.75 and after >= 0.75
    # the evaluation refuses a bridge whose source is not the encoder's space
    reverse = pretrain.fit_bridge(teacher(world, "b"), teacher(world, "a"), tmp_path / "images", progress=False)
    with pytest.raises(ValueError, match="bridge maps tiny-clip-b -> tiny-clip-a"):
        pretrain.evaluate_bridge(reverse, trained, world["train"], target_text=teacher(world, "a"), progress=False)


def test_cli_bridge_fits_saves_and_evaluates(world, trained, tmp_path, capsys):
    out = tmp_path / "a_to_b.safetensors"
    assert main(["bridge", "--source-model", f"local-dir:{world['clip_a']}", "--source-space", "tiny-clip-a",
                 "--target-model", f"local-dir:{world['clip_b']}", "--target-space", "tiny-clip-b",
                 "--images", str(world["images"]), "--out", str(out), "--method", "procrustes",
                 "--eval-manifest", str(world["train"]), "--encoder", str(trained)]) == 0
    text = capsys.readouterr().out
    assert "tiny-clip-a -> tiny-clip-b (procrustes) saved" in text
    assert text.count("zero-shot top-1") == 2 and "chance  25.0%" in text
    assert Bridge.load(out).target.dim == 24
