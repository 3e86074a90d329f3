"""rebind.pretrain: train modality encoders against a frozen CLIP image tower (ImageBind-style).

    import pretrain
    result = pretrain.train("run.yaml")                       # -> TrainResult (encoder in result.encoder_dir)
    report = pretrain.evaluate(result.encoder_dir, "esc50.csv", root="audio/", teacher=cfg.teacher)
    bridge = pretrain.fit_bridge(source_teacher, target_teacher, images)

CLI: ``python -m pretrain {train,cache-teacher,eval,bridge,write-shards,plot}`` (``--help`` each).
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; fail fast instead of retrying

from .config import RunConfig, load_config  # noqa: E402
from .data import write_shards  # noqa: E402
from .teacher import cache_teacher, load_teacher  # noqa: E402
from .train import Trainer, TrainResult, train  # noqa: E402
from .evaluate import EvalReport, evaluate, load_encoder  # noqa: E402
from .bridge import evaluate_bridge, fit_bridge  # noqa: E402
# (the functions train/evaluate shadow their module names on purpose: pretrain.train(...) is the API;
#  the modules stay importable as pretrain.train / pretrain.evaluate through sys.modules)


__all__ = ["RunConfig", "load_config", "train", "Trainer", "TrainResult", "cache_teacher", "evaluate",
           "EvalReport", "fit_bridge", "evaluate_bridge", "write_shards", "load_encoder", "load_teacher"]
