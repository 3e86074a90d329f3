"""The shipped pocket detector (adapters/weights/pocket_detector): loads by default, finds the dog in
held-out scenes when prompted with "dog" (text) or a held-out bark (audio), and does not when prompted
with another class (ranks and score margins; the paper's 0.9 is not reached yet: strict xfails).
Plus the evaluation code and a short training run.

Scenes and clips: tests/data/pocket/detector/ (held-out test split; see ../ATTRIBUTION.md).
"""
import json
from pathlib import Path

import pytest
import torch

import adapters.detic as detic
from adapters.detic.model import DeticStyleDetector
from torchvision.ops import box_iou

DATA = Path(__file__).parent / "data" / "pocket" / "detector"
SCENES = [json.loads(line) for line in (DATA / "scenes.jsonl").read_text().splitlines()]
DOG_SCENES = [s for s in SCENES if any(o["label"] == "dog" for o in s["objects"])]
NO_DOG_SCENES = [s for s in SCENES if all(o["label"] != "dog" for o in s["objects"])]
# other classes, fixed a priori: an animal, a vehicle, an instrument, an object of these scenes
OTHER_PROMPTS = ["cow", "car", "drums", "rain"]


def dog_box(scene) -> torch.Tensor:
    return torch.tensor([o["box"] for o in scene["objects"] if o["label"] == "dog"], dtype=torch.float32)


def dog_boxes_found(found, scene, name="dog") -> list[float]:
    """IoUs with the scene's dog of the boxes labelled ``name`` (any box, when name is None)."""
    keep = [i for i, n in enumerate(found.names) if name is None or n == name]
    if not keep:
        return []
    return box_iou(found.boxes[keep], dog_box(scene)).max(dim=1).values.tolist()


def has_pocket_encoder(modality: str) -> tuple[bool, str]:
    import encoders

    try:
        encoders.resolve_encoder(None, modality)
    except Exception as err:  # noqa: BLE001
        return False, f"the pocket {modality} encoder is not installed here ({type(err).__name__}: {err})"
    return True, ""


needs_text = pytest.mark.skipif(not has_pocket_encoder("text")[0], reason=has_pocket_encoder("text")[1])
needs_audio = pytest.mark.skipif(not has_pocket_encoder("audio")[0], reason=has_pocket_encoder("audio")[1])


def test_shipped_detector_loads_by_default_in_the_pocket_space_with_the_category_vocabulary():
    detector = detic.load_detector()
    assert isinstance(detector, DeticStyleDetector)
    assert detector is detic.load_detector()  # loaded once
    assert detector.space.name == "pocket"
    assert "dog" in detector.class_names and len(detector.class_names) >= 30
    emb = detector.get_class_embeddings()
    assert emb.shape == (len(detector.class_names), detector.space.dim)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(len(emb)), atol=1e-3)
    assert detector.config.min_size == [256]  # tests at the scenes' native size
    assert not detector.training


# The targets at the paper's threshold 0.9. The shipped pocket detector (text AP50 0.30 on the
# held-out scenes, MODEL_CARD.md) ranks the dog first in the held-out dog scenes but its scores top out
# near 0.5, so nothing reaches 0.9 yet. strict: a better detector that reaches them turns these red
# until the marks go.
AT_0_9 = pytest.mark.xfail(strict=True, reason="pocket detector scores stay below 0.9 (best dog box ~0.5)")
LARGE_DOG = DOG_SCENES[0]  # the test scene with the largest fully visible dog (rule in ../ATTRIBUTION.md)


def best_box(found):
    return found.boxes[found.scores.argmax()][None]


@AT_0_9
def test_default_vocabulary_detects_the_dog_at_the_default_threshold():
    found = detic.load_detector().detect(DATA / LARGE_DOG["image"])
    assert max(dog_boxes_found(found, LARGE_DOG), default=0.0) >= 0.5, found.to_dict()


@needs_text
@AT_0_9
def test_text_prompt_dog_finds_the_dog_at_0_9():
    with detic.from_text(["dog"]) as prompted:
        assert prompted.threshold == 0.9
        found = prompted.detect(DATA / LARGE_DOG["image"])
    assert max(dog_boxes_found(found, LARGE_DOG), default=0.0) >= 0.5, found.to_dict()


@needs_audio
@AT_0_9
def test_audio_prompt_held_out_bark_finds_the_dog_at_0_9():
    with detic.from_audio(DATA / "dog.wav") as prompted:
        assert prompted.class_names == ["dog"] and prompted.threshold == 0.9
        found = prompted.detect(DATA / LARGE_DOG["image"])
    assert max(dog_boxes_found(found, LARGE_DOG), default=0.0) >= 0.5, found.to_dict()


def prompt_detections(prompt, scene, kind):
    """All detections of one prompt (a class name or a shipped clip) at threshold 0."""
    ctx = detic.from_text([prompt], threshold=0.0) if kind == "text" else detic.from_audio(DATA / prompt, threshold=0.0)
    with ctx as prompted:
        return prompted.detect(DATA / scene["image"])


def scores_and_dog_ious(found, scene) -> list[tuple[float, float]]:
    """(score, IoU with the scene's dog) of every detection."""
    return list(zip(found.scores.tolist(), box_iou(found.boxes, dog_box(scene)).max(dim=1).values.tolist()))


# The shipped audio encoder (self-supervised start, seed 0: best validation zero-shot and detection of
# three seeds) ranks the dog first in both dog scenes, but its bark scores the dog in scene 161 at 0.045,
# below a box in a scene without a dog (0.108). Seeds 1 and 2 of the same recipe, and the encoder
# before it, pass; seed 0 ships because it is the recipe's first seed (also the best on validation),
# not because of this clip.
BARK_BELOW_ELSEWHERE = pytest.mark.xfail(strict=True, reason="the bark scores the dog in scene 161 at 0.045, "
                                                              "a box in a dog-free scene at 0.108")
DOG_PROMPTS = [pytest.param("text", "dog", marks=needs_text), pytest.param("audio", "dog.wav", marks=needs_audio)]
CROSS_SCENE_PROMPTS = [pytest.param("text", "dog", marks=needs_text),
                       pytest.param("audio", "dog.wav", marks=[needs_audio, BARK_BELOW_ELSEWHERE])]


@pytest.mark.parametrize("kind,prompt", DOG_PROMPTS)
@pytest.mark.parametrize("scene", DOG_SCENES, ids=[s["image"] for s in DOG_SCENES])
def test_dog_prompts_rank_the_dog_first(scene, kind, prompt):
    """Text "dog" and a held-out bark: the best box is the dog."""
    found = prompt_detections(prompt, scene, kind)
    assert box_iou(best_box(found), dog_box(scene)).max() >= 0.5, found.to_dict()


@needs_text
@pytest.mark.parametrize("other", OTHER_PROMPTS)
def test_on_the_dog_the_prompt_dog_outscores_other_classes(other):
    dog, rival = (max((s for s, i in scores_and_dog_ious(prompt_detections(p, LARGE_DOG, "text"), LARGE_DOG)
                       if i >= 0.5), default=0.0) for p in ("dog", other))
    assert dog > rival, (other, dog, rival)


@pytest.mark.parametrize("kind,prompt", CROSS_SCENE_PROMPTS)
def test_dog_prompts_score_higher_in_dog_scenes_than_anywhere_in_a_scene_without_one(kind, prompt):
    without = max(prompt_detections(prompt, s, kind).scores.max().item() for s in NO_DOG_SCENES)
    for scene in DOG_SCENES:
        best = [s for s, i in scores_and_dog_ious(prompt_detections(prompt, scene, kind), scene) if i > 0.3]
        assert max(best, default=0.0) > without, (scene["image"], best[:3], without)


@needs_audio
def test_best_box_figure_shows_each_scenes_single_best_detection():
    """The card's figure: one box per scene, the same box and score the detector ranks first."""
    from pretrain.pocket.detector_eval import audio_demo

    scenes = DOG_SCENES + NO_DOG_SCENES
    picture, found = audio_demo(None, {"dog": str(DATA / "dog.wav")}, [DATA / s["image"] for s in scenes],
                                best_only=True)
    assert picture.size[0] >= 256 * len(scenes) and picture.size[1] >= 256
    for scene, shown in zip(scenes, found["dog"]):
        everything = prompt_detections("dog.wav", scene, "audio")
        assert len(shown) == 1 and shown.scores[0] == everything.scores[0]
        assert torch.equal(shown.boxes[0], everything.boxes[0])


@needs_audio
def test_audio_prompt_of_another_animal_does_not_rank_the_dog_first():
    for scene in DOG_SCENES:
        found = prompt_detections("cow.wav", scene, "audio")
        assert box_iou(best_box(found), dog_box(scene)).max() < 0.5, (scene["image"], found.to_dict())


# ------------------------------------------------------------------------------ evaluation code

def test_cached_box_features_give_the_same_detections_as_detect():
    from pretrain.pocket.detector_eval import SceneFeatures
    from torchvision.transforms.functional import pil_to_tensor
    from PIL import Image

    detector = detic.load_detector()
    image = Image.open(DATA / SCENES[0]["image"]).convert("RGB")
    vocabulary = detector.get_class_embeddings()[:7]
    names = detector.class_names[:7]
    cached = SceneFeatures(detector, [pil_to_tensor(image).float() / 255.0]).detect(vocabulary, names, 0.05)[0]
    with detector.prompted(vocabulary, names=names, threshold=0.05) as prompted:
        direct = prompted.detect(image)
    assert len(direct) == len(cached["scores"]) > 0
    assert torch.allclose(direct.scores, cached["scores"], atol=1e-5)
    assert torch.allclose(direct.boxes, cached["boxes"], atol=1e-3)


def test_average_precision_counts_duplicates_and_wrong_classes_as_false_positives():
    from pretrain.pocket.detector_eval import average_precision, precision_recall_at

    gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 1])}]
    dets = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]),
             "scores": torch.tensor([0.9, 0.8, 0.7, 0.95]), "labels": torch.tensor([0, 0, 1, 1])}]
    report = average_precision(dets, gt, ["a", "b"])
    assert report["per_class"]["a"]["ap50"] == pytest.approx(1.0)  # the duplicate comes after the hit
    assert report["per_class"]["b"]["ap50"] == pytest.approx(0.5)  # a confident miss first: P=1/2 at R=1
    assert report["ap50"] == pytest.approx(0.75)
    at = precision_recall_at(dets, gt, 2, 0.85)
    assert (at["true_positives"], at["detections"], at["recall"]) == (1, 2, 0.5)


# ---------------------------------------------------------------------------------- training

def shipped_scenes_as_training_data(folder: Path):
    """The shipped scenes as a tiny data directory, and the shipped vocabulary standing in for the
    CLIP's text embeddings (no encoder needed)."""
    from pretrain.pocket.detector import CLASS_NAMES, ClassEmbeddings, SceneSet

    (folder / "manifests").mkdir()
    (folder / "manifests" / "scenes_train.jsonl").write_text((DATA / "scenes.jsonl").read_text())
    for scene in SCENES:
        (folder / scene["image"]).write_bytes((DATA / scene["image"]).read_bytes())
    shipped = detic.load_detector()
    text = torch.stack([shipped.get_class_embeddings()[shipped.class_names.index(n)] for n in CLASS_NAMES])
    return SceneSet.load(folder, "train"), ClassEmbeddings(CLASS_NAMES, "pocket", text, {})


@pytest.mark.slow
def test_a_short_run_of_the_recipe_on_the_shipped_scenes_lowers_the_loss(tmp_path):
    from pretrain.pocket.detector import CLASS_NAMES, DetectorRecipe, save_trained_detector, train_detector

    train, classes = shipped_scenes_as_training_data(tmp_path)
    recipe = DetectorRecipe(steps=40, batch_size=2, warmup_steps=5, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                            eval_every=0, embedding_mix_prob=0.0, synthetic_fraction=0.0)
    result = train_detector(train, classes, recipe, progress=False, metrics_csv=tmp_path / "metrics.csv")
    losses = [m["loss"] for m in result.metrics]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:5]) / 5, losses
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 41
    assert not (tmp_path / "metrics.csv.partial").exists()
    saved = save_trained_detector(result.model, recipe, tmp_path / "det")
    again = detic.load_detector(saved)
    assert again.class_names == list(CLASS_NAMES) and again.config.min_size == [recipe.test_size]
    assert json.loads((saved / "recipe.json").read_text())["recipe"]["steps"] == 40


def test_a_stopped_training_run_leaves_the_folders_metrics_csv_untouched(tmp_path):
    """Retraining into a folder that holds a detector (the shipped one) and stopping it (Ctrl-C)
    must not leave that detector's metrics.csv half overwritten: the live curve is a .partial file."""
    from pretrain.pocket.detector import DetectorRecipe, train_detector

    train, classes = shipped_scenes_as_training_data(tmp_path)
    existing = tmp_path / "metrics.csv"
    existing.write_text("step,loss\n1,0.5\n")
    recipe = DetectorRecipe(steps=4, batch_size=2, warmup_steps=1, eval_every=2,
                            embedding_mix_prob=0.0, synthetic_fraction=0.0)

    def stop_at_the_first_evaluation(line: str) -> None:
        if "val AP50" in line:
            raise KeyboardInterrupt(line)

    with pytest.raises(KeyboardInterrupt):
        train_detector(train, classes, recipe, val=train, progress=False, metrics_csv=existing,
                       log=stop_at_the_first_evaluation)
    assert existing.read_text() == "step,loss\n1,0.5\n"
    partial = (tmp_path / "metrics.csv.partial").read_text().splitlines()
    assert partial[0].startswith("step,") and len(partial) == 2  # header + step 1 (step 2 stopped at its log)
