"""Real processes: a 2-process gloo run (torchrun) equals a 1-process run with the same global batch;
runs stopped by SIGTERM or killed by SIGKILL resume to the weights of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import pretrain
from pretrain_fixtures import run_config, tiny_world

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_world(tmp_path_factory.getbasetemp() / "pretrain_world")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def env():
    e = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1",
             HF_HUB_OFFLINE="1")
    return e


def write_yaml(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "encoder" / "audio.safetensors"))


def losses(run_dir: Path) -> list[float]:
    import csv

    return [float(r["loss"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))]


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(world, tmp_path):
    train = {"steps": 8, "batch_size": 16, "log_every": 1, "checkpoint_every": 4}
    pretrain.train(run_config(world, tmp_path / "one", train=train))
    cfg = write_yaml(run_config(world, tmp_path / "two", train=train), tmp_path / "two.yaml")
    proc = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "pretrain", "train",
                           "--config", str(cfg)], cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 2 process(es)" in proc.stderr
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"max |w_1proc - w_2proc| after 8 steps: {diff:.2e}")
    assert diff < 1e-5
    assert losses(tmp_path / "one") == pytest.approx(losses(tmp_path / "two"), abs=1e-5)


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 300) -> int:
    marker = run_dir / "checkpoints" / "last.json"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if marker.exists():
            got = json.loads(marker.read_text())["step"]
            if got >= step:
                return got
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


@pytest.mark.slow
def test_sigterm_and_sigkill_runs_resume_to_uninterrupted_weights(world, tmp_path):
    train = {"steps": 60, "checkpoint_every": 10, "log_every": 5}
    reference = pretrain.train(run_config(world, tmp_path / "ref", train=train))
    run = tmp_path / "run"
    cfg = write_yaml(run_config(world, run, train=train), tmp_path / "run.yaml")
    cmd = [sys.executable, "-m", "pretrain", "train", "--config", str(cfg)]

    # SIGTERM: saves a checkpoint at the step it is on, exports the encoder, exits 128 + 15
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stderr=subprocess.PIPE, text=True)
    _wait_for_step(run, 10, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    stopped = json.loads((run / "checkpoints" / "last.json").read_text())["step"]
    assert 10 <= stopped < 60
    assert json.loads((run / "encoder" / "training.json").read_text())["interrupted"] is True

    # resume, then SIGKILL mid-way: nothing is saved beyond the last periodic checkpoint
    proc = subprocess.Popen(cmd + ["--resume"], cwd=REPO, env=env(), stderr=subprocess.PIPE, text=True)
    killed_after = _wait_for_step(run, stopped + 10, proc)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert killed_after < 60
    torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # intact, not torn

    done = subprocess.run(cmd + ["--resume"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stderr
    a, b = weights(tmp_path / "ref"), weights(run)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [int(s) for s in __import__("re").findall(r"^(\d+),", (run / "metrics.csv").read_text(), flags=8)]
    assert steps == list(range(5, 61, 5))  # no duplicated or missing rows after two resumes
    assert losses(run) == losses(tmp_path / "ref")


@pytest.mark.slow
def test_cache_teacher_on_two_processes_equals_one(world, tmp_path):
    cfg = run_config(world, tmp_path / "run", data={"train": str(world["pairs"]), "images": None},
                     loss={"positives": "pairs"})
    pretrain.cache_teacher(pretrain.load_config(cfg, check_files=False), out=tmp_path / "one", views=3, chunk=3,
                           progress=False)
    y = write_yaml(cfg, tmp_path / "run.yaml")
    proc = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "pretrain", "cache-teacher",
                           "--config", str(y), "--out", str(tmp_path / "two"), "--views", "3", "--chunk", "3"],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import numpy as np

    a, b = np.load(tmp_path / "one" / "embeddings.npy"), np.load(tmp_path / "two" / "embeddings.npy")
    assert a.shape == (16, 3, 32)
    assert np.abs(a - b).max() < 1e-6  # same images, views and crops; only float rounding (thread counts) differs
    assert json.loads((tmp_path / "two" / "keys.json").read_text()) == json.loads((tmp_path / "one" / "keys.json").read_text())
