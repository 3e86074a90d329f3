"""The real-Detic backend against real Detic code (detectron2 + the Detic source).

Needs detectron2 and the Detic source; skipped (with the reason) when either is missing. The
source is found through $REBIND_DETIC_SOURCE (a Detic checkout or the tarball) or
$REBIND_DETIC_TARBALL, else the tarball
in ../shared/thirdparty/ (see its README). A SHRUNK Detic (ResNet-18 FPN, 128-px input, a 32-d
zero-shot head in the test-32 space, random weights, no downloads) keeps a forward at seconds.
"""
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import adapters.detic as detic
from detic_helpers import random_image, tiny_encoders, write_sounds
from encoders.inputs import InputError

# Detic and detectron2 import deprecated timm/torch APIs and call torch.meshgrid without indexing=
pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")]

REPO = Path(__file__).resolve().parents[1]
DETIC_CONFIG = "configs/Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.yaml"  # the flagship LVIS+IN-21k model
NUM_CLASSES = 7
SHRINK = [
    "MODEL.WEIGHTS", "", "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH", "rand",
    "MODEL.BACKBONE.NAME", "build_p67_resnet_fpn_backbone", "MODEL.RESNETS.DEPTH", 18,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 64, "MODEL.RESNETS.OUT_FEATURES", ["res3", "res4", "res5"],
    "MODEL.FPN.IN_FEATURES", ["res3", "res4", "res5"], "MODEL.FPN.OUT_CHANNELS", 64,
    "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "MODEL.ROI_MASK_HEAD.CONV_DIM", 16,
    "MODEL.ROI_HEADS.NUM_CLASSES", NUM_CLASSES, "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM", 32,
    "MODEL.RESET_CLS_TESTS", False, "FP16", False, "MODEL.CENTERNET.POST_NMS_TOPK_TEST", 64,
    "INPUT.MIN_SIZE_TEST", 128, "INPUT.MAX_SIZE_TEST", 160,
]


def find_detic_source() -> Path | None:
    for variable in ("REBIND_DETIC_SOURCE", "REBIND_DETIC_TARBALL"):  # the latter is what .ci/run exports
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    for folder in (REPO.parent / "shared" / "thirdparty", REPO.parent.parent / "shared" / "thirdparty"):
        found = sorted(folder.glob("detic-*.tar.gz")) if folder.is_dir() else []
        if found:
            return found[-1]
    return None


@pytest.fixture(scope="module")
def detic_root(tmp_path_factory):
    try:
        import detectron2  # noqa: F401
    except ImportError:
        pytest.skip("detectron2 is not installed (tests: pip install "
                    "../shared/thirdparty/detectron2-0.6-cp311-cp311-linux_x86_64.whl)")
    source = find_detic_source()
    if source is None or not source.exists():
        pytest.skip("the Detic source is not available: set REBIND_DETIC_SOURCE (or REBIND_DETIC_TARBALL) "
                    "to a Detic checkout or to ../shared/thirdparty/detic-*.tar.gz")
    if source.is_dir():
        root = source
    else:
        target = tmp_path_factory.mktemp("detic_src")
        with tarfile.open(source) as tar:
            tar.extractall(target, filter="data")
        root = target / "Detic"
    try:
        from adapters.detic.detectron2 import _import_detic

        _import_detic(root)
        import detic.modeling.utils  # noqa: F401
    except ImportError as e:
        pytest.skip(f"Detic does not import here: {e}")
    return root


@pytest.fixture(scope="module")
def wrapped(detic_root):
    torch.manual_seed(0)
    return detic.load_detectron2_detic(DETIC_CONFIG, opts=SHRINK, detic_root=detic_root, space="test-32")


@pytest.fixture
def spy_reset_cls_test(monkeypatch, detic_root):
    import detic.modeling.utils as detic_utils

    calls = []
    real = detic_utils.reset_cls_test
    monkeypatch.setattr(detic_utils, "reset_cls_test", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def snapshot(det):
    stages = [(c.zs_weight, type(c.zs_weight), list(c._parameters), list(c._buffers),
               set(c._non_persistent_buffers_set)) for c in det.classifiers]
    return stages, [m.num_classes for m in det.class_count_owners], list(det.model.state_dict())


def test_every_cascade_stage_gets_the_unit_embeddings_and_everything_is_restored(wrapped, spy_reset_cls_test):
    det = wrapped
    assert len(det.classifiers) == 3  # Detic's cascade: one zero-shot classifier per stage
    before_stages, before_counts, before_keys = snapshot(det)
    assert before_counts == [NUM_CLASSES] * len(before_counts) and len(before_counts) == 4
    raw = 4 * torch.randn(3, 32)
    image = random_image(100, 150)

    with det.prompted(raw, names=["dog", "bell", "rain"], threshold=0.0) as prompted:
        for c in det.classifiers:
            assert "zs_weight" in c._buffers and "zs_weight" not in c._parameters
            assert c.zs_weight.shape == (32, 4)  # D x (C+1)
            assert torch.allclose(c.zs_weight[:, :3], F.normalize(raw, dim=-1).T, atol=1e-6)
            assert torch.equal(c.zs_weight[:, 3], torch.zeros(32))
        assert [m.num_classes for m in det.class_count_owners] == [3, 3, 3, 3]
        found = prompted.detect(image)
        assert len(found) > 0 and int(found.labels.max()) < 3
        assert set(found.names) <= {"dog", "bell", "rain"}
        assert found.masks is not None and found.masks.shape == (len(found), 100, 150)
        assert (found.boxes[:, 2] <= 150).all() and (found.boxes[:, 3] <= 100).all()
        assert found.draw(image).size == (150, 100)

    after_stages, after_counts, after_keys = snapshot(det)
    for (w0, t0, p0, b0, n0), (w1, t1, p1, b1, n1) in zip(before_stages, after_stages):
        assert w1 is w0 and t1 is t0 and p1 == p0 and b1 == b0 and n1 == n0
    assert after_counts == before_counts and after_keys == before_keys
    assert det.class_names == [f"class{i}" for i in range(NUM_CLASSES)]
    assert spy_reset_cls_test == []  # Detic's in-place reset_cls_test is never used


def test_detect_uses_detics_own_scores_and_threshold(wrapped):
    with wrapped.prompted(torch.randn(2, 32), threshold=0.0) as prompted:
        image = random_image(100, 150)
        everything = prompted.detect(image)
        cut = float(everything.scores.median())
        kept = prompted.detect(image, threshold=cut)
    assert (kept.scores > cut).all() and len(kept) < len(everything)
    assert [p.test_score_thresh for p in wrapped.model.roi_heads.box_predictor] == [0.02] * 3  # put back
    assert wrapped.model.roi_heads.one_class_per_proposal is False


def test_one_class_per_proposal_as_detics_demo(wrapped):
    def boxes_with_several_labels(found):
        rows = [tuple(b) for b in found.boxes.round(decimals=3).tolist()]
        return len(rows) - len(set(rows))

    image = random_image(100, 150)
    with wrapped.prompted(torch.randn(3, 32), threshold=0.0) as prompted:
        assert boxes_with_several_labels(prompted.detect(image)) == 0
        wrapped.one_class_per_proposal = None  # the config's setting (False): every class of every box
        try:
            assert boxes_with_several_labels(prompted.detect(image)) > 0
        finally:
            wrapped.one_class_per_proposal = True


def test_from_audio_on_real_detic(wrapped, tmp_path, spy_reset_cls_test):
    enc = tiny_encoders()
    sounds = write_sounds(tmp_path, names=("dog", "bell"))
    with detic.from_audio(sounds, detector=wrapped, encoder=enc, threshold=0.0) as prompted:
        assert prompted.class_names == ["dog", "bell"]
        assert torch.allclose(wrapped.get_class_embeddings(),
                              F.normalize(enc["audio"].embed(sounds), dim=-1), atol=1e-5)
        assert int(prompted.detect(random_image()).labels.max()) < 2
    assert wrapped.num_classes == NUM_CLASSES and spy_reset_cls_test == []


def test_restored_after_an_error_and_wrong_space_refused(wrapped):
    before = [c.zs_weight for c in wrapped.classifiers]
    with pytest.raises(ZeroDivisionError):
        with wrapped.prompted(torch.randn(2, 32)):
            1 / 0
    assert all(c.zs_weight is w for c, w in zip(wrapped.classifiers, before))
    with pytest.raises(InputError, match=r"test-32 \(32-d\).*bridge"):
        wrapped.prompt(torch.randn(2, 512))
    assert all(c.zs_weight is w for c, w in zip(wrapped.classifiers, before))


def test_a_model_changed_by_detics_reset_cls_test_is_restored_as_it_was(detic_root):
    from detectron2.modeling import build_model
    from detic.modeling.utils import reset_cls_test

    from adapters.detic.detectron2 import Detectron2Detic, detic_config

    model = build_model(detic_config(DETIC_CONFIG, SHRINK, detic_root)).eval()
    reset_cls_test(model, torch.randn(32, 5), 5)  # Detic demo's vocabulary change: a plain attribute now
    plain = [p.cls_score.zs_weight for p in model.roi_heads.box_predictor]
    det = Detectron2Detic(model, space="test-32")
    assert det.num_classes == 5
    with det.prompted(torch.randn(2, 32)):
        assert all("zs_weight" in c._buffers for c in det.classifiers)
    for c, w in zip(det.classifiers, plain):
        assert c.zs_weight is w and "zs_weight" not in c._buffers and "zs_weight" not in c._parameters


def test_missing_detectron2_says_what_to_install(monkeypatch):
    from adapters.detic.detectron2 import load_detectron2_detic

    monkeypatch.setitem(sys.modules, "detectron2", None)
    with pytest.raises(ImportError, match="detectron2 is not installed.*git clone --recursive .*Detic"):
        load_detectron2_detic("configs/any.yaml")
    with pytest.raises(FileNotFoundError, match="not a Detic checkout"):
        load_detectron2_detic("configs/any.yaml", detic_root=Path(os.sep) / "no" / "such" / "Detic")


def test_a_model_without_a_zero_shot_head_is_refused():
    from adapters.detic.detectron2 import Detectron2Detic

    with pytest.raises(TypeError, match="no Detic zero-shot classifier"):
        Detectron2Detic(torch.nn.Sequential(torch.nn.Linear(4, 4)), space="test-32")
