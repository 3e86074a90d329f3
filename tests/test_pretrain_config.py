"""Run configs are validated before any work starts; errors name the field."""
import pytest
import yaml

import pretrain
from encoders.config import ConfigError
from pretrain.__main__ import main
from pretrain.loss import info_nce


def base(tmp_path):
    (tmp_path / "train.csv").write_text("audio,image\na.wav,a.png\n")
    return {"out_dir": str(tmp_path / "run"), "student": {"model": "imagebind_test"},
            "teacher": {"model": "ViT-B-32", "pretrained": "openai"},
            "data": {"train": str(tmp_path / "train.csv")}, "train": {"batch_size": 8, "steps": 10}}


@pytest.mark.parametrize("change, message", [
    ({"optim": {"lrr": 1e-3}}, r"run config\.optim: unknown key\(s\) \['lrr'\]"),
    ({"optim": {"lr": -1.0}}, r"run config\.optim\.lr: must be > 0, got -1\.0"),
    ({"optim": {"lr": "fast"}}, r"run config\.optim\.lr: expected a number, got 'fast'"),
    ({"loss": {"positives": "all"}}, r"run config\.loss\.positives: 'all' is not one of \['pairs', 'labels'\]"),
    ({"train": {"steps": None}}, r"run config\.train: give steps or epochs"),
    ({"train": {"batch_size": 0, "steps": 1}}, r"run config\.train\.batch_size: must be > 0"),
    ({"augment": {"volume": [1.2, 0.9]}}, r"run config\.augment\.volume: expected \[lo, hi\]"),
    ({"teacher": {"model": "ViT-B-32", "config": {"embed_dim": 4}}}, r"run config\.teacher: give exactly one of model"),
    ({"teacher": {"model": "ViT-B-32", "crop_scale": [0.9, 0.2]}}, r"run config\.teacher\.crop_scale"),
    ({"data": {"train": "nowhere.csv"}}, r"run config\.data\.train: '.*nowhere\.csv' does not exist"),
    ({"colour": "blue"}, r"run config: unknown key\(s\) \['colour'\]"),
])
def test_bad_config_names_the_field(tmp_path, change, message):
    cfg = base(tmp_path)
    for key, value in change.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and key in cfg and key != "teacher" else value
    with pytest.raises(ConfigError, match=message):
        pretrain.load_config(cfg)


def test_yaml_file_paths_resolve_from_its_folder_and_overrides_apply(tmp_path):
    cfg = base(tmp_path)
    cfg["data"]["train"] = "train.csv"  # relative to the YAML file
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    loaded = pretrain.load_config(tmp_path / "run.yaml", ["optim.lr=2e-4", "train.steps=3", "loss.temperature=0.2"])
    assert loaded.path(loaded.data.train) == tmp_path / "train.csv"
    assert (loaded.optim.lr, loaded.train.steps, loaded.loss.temperature) == (2e-4, 3, 0.2)
    assert loaded.optim.betas == [0.9, 0.95] and loaded.optim.weight_decay == 0.2  # paper Table 9 defaults
    with pytest.raises(ConfigError, match="override 'optim'"):
        pretrain.load_config(tmp_path / "run.yaml", ["optim"])


def test_cli_check_reports_bad_config_with_exit_code_2(tmp_path, capsys):
    cfg = base(tmp_path)
    cfg["loss"] = {"temperature": 0}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "bad.yaml"), "--check"]) == 2
    assert "run config.loss.temperature: must be > 0" in capsys.readouterr().err
    cfg["loss"] = {"temperature": 0.05}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "good.yaml"), "--check"]) == 0


def test_info_nce_is_symmetric_cross_entropy_and_multi_positive_reduces_to_it():
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    loss, stats = info_nce(s, t, 0.05)
    logits = F.normalize(s, dim=-1) @ F.normalize(t, dim=-1).T / 0.05
    expected = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert info_nce(s, t, 0.05, torch.arange(6))[0].item() == pytest.approx(loss.item(), rel=1e-6)
    assert info_nce(s, t, 0.05, torch.full((6,), -1))[0].item() == pytest.approx(loss.item(), rel=1e-6)
    # with shared labels every same-label teacher counts: the loss of an aligned batch drops
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    aligned = t[[1, 0, 3, 2, 5, 4]]  # each row matches the OTHER member of its label
    assert info_nce(aligned, t, 0.05, labels)[0] < info_nce(aligned, t, 0.05)[0]
    assert info_nce(aligned, t, 0.05, labels)[1]["acc"] == 1.0


@pytest.mark.parametrize("path", sorted((__import__("pathlib").Path(pretrain.__file__).parent / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_example_configs_validate(path):
    cfg = pretrain.load_config(path, check_files=False)
    assert cfg.out_dir and cfg.train.batch_size > 0


def test_teacher_space_resolution_names_the_fix():
    from pretrain.config import TeacherConfig
    from pretrain.teacher import load_teacher, resolve_space, teacher_identity

    # a registered space is found from the open_clip name + pretrained tag, without building the tower
    ident = teacher_identity(TeacherConfig(model="ViT-B-32", pretrained="openai"))
    assert resolve_space(TeacherConfig(model="ViT-B-32", pretrained="openai"), ident["dim"]).name == "openai-vit-b-32"
    with pytest.raises(ConfigError, match=r"no registered CLIP space .*'ViT-H-14'.*teacher\.space"):
        resolve_space(TeacherConfig(model="ViT-H-14", pretrained="my_vith.bin"), 1024)
    with pytest.raises(ConfigError, match=r"openai-vit-b-32 \(512-d\) is 512-d but the teacher tower embeds to 1024-d"):
        resolve_space(TeacherConfig(model="ViT-H-14", space="openai-vit-b-32"), 1024)
    # an inline open_clip config: built, frozen, its new space registered
    tiny = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
            "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1}}
    t = load_teacher(TeacherConfig(config=tiny, space="inline-16"), text=True)
    assert t.space.dim == 16 and not any(p.requires_grad for p in t.visual.parameters())
    import torch

    assert t.encode_images(torch.zeros(2, 3, 32, 32)).shape == (2, 16)
    assert t.encode_texts(["a dog", "rain"]).norm(dim=-1).allclose(torch.ones(2))
