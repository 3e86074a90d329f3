"""rebind's own Detic-style detector: the classifier swap, Detic's scoring, training, save/load."""
import json

import pytest
import torch
import torch.nn.functional as F

import adapters.detic as detic
from adapters.detic.model import DeticStyleConfig, DeticStyleDetector
from detic_helpers import random_image, tiny_detector
from encoders.config import ConfigError


def unit(n, d=32, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_swap_puts_unit_embeddings_and_a_zero_background_column_then_restores_the_same_buffer():
    model = tiny_detector()
    model.set_class_embeddings(unit(2, seed=1), ["old-a", "old-b"])
    before = model.classifier.class_embeddings
    before_copy = before.clone()
    raw = 3.0 * torch.randn(4, 32)  # not unit norm: the swap normalises

    with model.prompted(raw, names=["a", "b", "c", "d"]) as prompted:
        matrix = model.classifier.class_embeddings
        assert matrix.shape == (32, 5)
        assert torch.allclose(matrix[:, :4], F.normalize(raw, dim=-1).T, atol=1e-6)
        assert torch.equal(matrix[:, 4], torch.zeros(32))
        assert "roi_heads.box_predictor.cls_score.class_embeddings" in dict(model.named_buffers())
        assert model.class_names == ["a", "b", "c", "d"] == prompted.class_names
        assert torch.allclose(model.get_class_embeddings(), F.normalize(raw, dim=-1), atol=1e-6)

    assert model.classifier.class_embeddings is before
    assert torch.equal(before, before_copy)
    assert model.class_names == ["old-a", "old-b"]


def test_swap_is_undone_when_the_block_raises():
    model = tiny_detector()
    model.set_class_embeddings(unit(2), ["x", "y"])
    before = model.classifier.class_embeddings
    with pytest.raises(KeyError):
        with model.prompted(unit(3, seed=2)):
            raise KeyError("boom")
    assert model.classifier.class_embeddings is before and model.class_names == ["x", "y"]


def test_prompts_nest_and_each_detects_with_its_own_classes():
    model = tiny_detector()
    image = random_image()
    outer = model.prompt(unit(2, seed=3), names=["o1", "o2"], threshold=0.0)
    inner = model.prompt(unit(5, seed=4), names=[f"i{k}" for k in range(5)], threshold=0.0)
    with pytest.raises(RuntimeError, match="reverse order"):
        outer.restore()
    # the outer prompt borrows the detector for its call and gives it back
    found = outer.detect(image)
    assert set(found.class_names) == {"o1", "o2"} and int(found.labels.max()) < 2
    assert model.class_names == [f"i{k}" for k in range(5)]
    inner.restore()
    assert model.class_names == ["o1", "o2"]
    outer.restore()
    outer.restore()  # a second restore is a no-op
    assert model.num_classes == 0


def test_final_score_is_sqrt_of_sigmoid_class_times_objectness_with_one_class_per_box_and_nms():
    heads = tiny_detector().roi_heads
    logits = torch.tensor([[2.0, -1.0, 0.0, 0.0],   # 3 classes + background column
                           [-3.0, 1.0, 0.5, 0.0],
                           [2.0, -1.0, 0.0, 0.0]])
    objectness = torch.tensor([0.8, 0.5, 0.4])
    scores = heads.final_scores(logits, objectness)
    assert torch.allclose(scores, (logits[:, :3].sigmoid() * objectness[:, None]).sqrt())

    proposals = [torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0], [0.0, 0.0, 10.0, 10.0]])]
    zero_deltas = torch.zeros(3, 4)
    out = heads.postprocess(logits, zero_deltas, proposals, [objectness], [(50, 50)], score_threshold=0.0)[0]
    # boxes 0 and 2 are the same class at the same place: NMS keeps the better one (box 0)
    assert out["labels"].tolist() == [0, 1]
    assert torch.allclose(out["scores"], torch.stack([scores[0, 0], scores[1, 1]]))
    assert torch.allclose(out["boxes"], proposals[0][:2], atol=1e-4)
    # kept only when strictly above the threshold
    strict = heads.postprocess(logits, zero_deltas, proposals, [objectness], [(50, 50)],
                               score_threshold=float(scores[1, 1]))[0]
    assert strict["labels"].tolist() == [0]


def test_detect_returns_boxes_in_input_pixels_for_n_classes():
    model = tiny_detector()
    with model.prompted(unit(3), names=["a", "b", "c"], threshold=0.0) as prompted:
        found = prompted.detect(random_image(90, 140))
    assert len(found) > 0 and found.image_size == (140, 90)
    assert found.boxes.shape == (len(found), 4)
    assert (found.boxes[:, 0] >= 0).all() and (found.boxes[:, 2] <= 140).all() and (found.boxes[:, 3] <= 90).all()
    assert int(found.labels.max()) < 3 and set(found.names) <= {"a", "b", "c"}
    assert (found.scores[:-1] >= found.scores[1:]).all() and len(found) <= 300
    assert found.masks is None


def test_training_returns_detic_losses_that_train_the_detector():
    torch.manual_seed(0)
    model = tiny_detector(norm="group", min_size=[96], max_size=128, rpn_pre_nms_top_n_train=200,
                          rpn_post_nms_top_n_train=64, box_batch_size_per_image=32)
    model.set_class_embeddings(unit(3), ["a", "b", "c"])
    images = [torch.rand(3, 72, 96), torch.rand(3, 96, 96)]
    targets = [{"boxes": torch.tensor([[8.0, 15.0, 45.0, 60.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]  # a background image
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(5):
        losses = model(images, targets)
        assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        history.append(losses["loss_classifier"].item())
        optimizer.step()
    assert model.classifier.linear.weight.grad.abs().sum() > 0
    assert next(model.backbone.parameters()).grad is not None
    assert not model.classifier.class_embeddings.requires_grad
    assert history[-1] < history[0]
    assert model.training  # detect() elsewhere must not leave it in eval mode
    model.detect(random_image(), threshold=0.5)
    assert model.training


def test_training_targets_are_checked():
    model = tiny_detector()
    model.set_class_embeddings(unit(2), ["a", "b"])
    model.train()
    image = [torch.rand(3, 64, 64)]
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        model(image, [{"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]), "labels": torch.tensor([2])}])
    with pytest.raises(ValueError, match="needs targets"):
        model(image)


def test_vocabulary_is_a_non_persistent_buffer_that_moves_with_the_model():
    model = tiny_detector()
    model.set_class_embeddings(unit(3), ["a", "b", "c"])
    assert not any("class_embeddings" in k for k in model.state_dict())
    model.double()
    assert model.classifier.class_embeddings.dtype == torch.float64
    with model.prompted(unit(2)):
        assert model.classifier.class_embeddings.dtype == torch.float64
    assert model.classifier.class_embeddings.dtype == torch.float64


def test_save_and_load_give_the_same_detector(tmp_path):
    model = tiny_detector(backbone="resnet18")
    model.set_class_embeddings(unit(3), ["dog", "cat", "bird"])
    image = random_image()
    expected = model.detect(image, threshold=0.0)
    folder = detic.save_detector(model, tmp_path / "det")
    assert sorted(p.name for p in folder.iterdir()) == ["classes.safetensors", "config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["config"]["backbone"] == "resnet18"

    loaded = detic.load_detector(folder)
    assert isinstance(loaded, DeticStyleDetector) and loaded.class_names == ["dog", "cat", "bird"]
    got = loaded.detect(image, threshold=0.0)
    assert torch.allclose(got.boxes, expected.boxes, atol=1e-4) and torch.equal(got.labels, expected.labels)
    assert torch.allclose(got.scores, expected.scores, atol=1e-6)


def test_default_detector_not_installed_says_how_to_pass_one(monkeypatch, tmp_path):
    monkeypatch.setattr(detic.prompts, "DEFAULT_DETECTOR_DIR", tmp_path / "missing")
    monkeypatch.setattr(detic.prompts, "_default_detector", None)
    with pytest.raises(RuntimeError, match="embedded default detector .* not installed.*detector="):
        detic.load_detector()


def test_detector_without_classes_asks_to_be_prompted():
    with pytest.raises(RuntimeError, match="no classes"):
        tiny_detector().detect(random_image())


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="backbone"):
        DeticStyleDetector({"space": "test-32", "backbone": "vgg11"})
    with pytest.raises(ConfigError, match="space"):
        DeticStyleConfig.from_dict({"space": "no-such-space"})
    with pytest.raises(ConfigError, match="anchor_sizes"):
        tiny_detector(anchor_sizes=[32, 64])
