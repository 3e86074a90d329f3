"""A rebind encoder whose vision/text modalities are open_clip towers (the pocket CLIP) as a teacher."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import encoders
from encoders.config import ConfigError
from pretrain.config import TeacherConfig
from pretrain.teacher import load_teacher, resolve_space, teacher_identity
from pretrain_fixtures import TINY_CLIP


@pytest.fixture(scope="module")
def clip_and_folder(tmp_path_factory):
    """A random tiny open_clip CLIP and the same weights saved as a rebind encoder folder."""
    import open_clip

    torch.manual_seed(0)
    clip = open_clip.CLIP(embed_dim=TINY_CLIP["embed_dim"], vision_cfg=TINY_CLIP["vision_cfg"],
                          text_cfg=TINY_CLIP["text_cfg"]).eval()
    config = {"name": "tiny_rebind_clip", "space": "test-32", "modalities": {
        "vision": {"arch": "open_clip_vision", "open_clip_config": TINY_CLIP,
                   "preprocess": {"kind": "image", "size": 32, "interpolation": "bicubic"}},
        "text": {"arch": "open_clip_text", "open_clip_config": TINY_CLIP, "scale": 14.0, "learnable_scale": True,
                 "preprocess": {"kind": "text", "context_length": 16, "tokenizer": "ViT-B-32"}}}}
    folder = tmp_path_factory.mktemp("rebind_clip") / "clip"
    encoders.save_modalities(encoders.create(config, checkpoint=clip.state_dict()), folder)
    return clip, folder


def test_rebind_teacher_equals_the_open_clip_model_and_the_public_path(clip_and_folder):
    clip, folder = clip_and_folder
    cfg = TeacherConfig(model=f"rebind:{folder}")
    teacher = load_teacher(cfg, text=True)
    assert teacher.space.name == "test-32" and teacher.dim == 32
    assert teacher_identity(cfg)["weights"].startswith("vision.safetensors:")
    rng = np.random.default_rng(0)
    pics = [Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)) for _ in range(3)]
    x = torch.stack([teacher.transform(train=False)(p) for p in pics])
    with torch.no_grad():
        want = F.normalize(clip.encode_image(x), dim=-1)
    assert torch.allclose(teacher.encode_images(x), want, atol=1e-5)
    # the cached targets are what users get from encoders.embed_image on the saved folder
    public = encoders.embed_image(pics, model=encoders.create(folder, modalities=("vision",)))
    assert torch.allclose(teacher.encode_images(x), public, atol=1e-5)
    texts = ["a photo of a dog", "rain"]
    import open_clip

    with torch.no_grad():
        want_t = F.normalize(clip.encode_text(open_clip.get_tokenizer("ViT-B-32", context_length=16)(texts)), dim=-1)
    assert torch.allclose(teacher.encode_texts(texts), want_t, atol=1e-5)


def test_rebind_teacher_space_and_errors(clip_and_folder, tmp_path):
    _, folder = clip_and_folder
    assert resolve_space(TeacherConfig(model=f"rebind:{folder}"), 32).name == "test-32"
    with pytest.raises(ConfigError, match="embed to 16-d"):
        resolve_space(TeacherConfig(model=f"rebind:{folder}"), 16)
    with pytest.raises(ConfigError, match="unknown encoder config"):
        load_teacher(TeacherConfig(model="rebind:no_such_encoder"))
    # a saved folder without a vision tower cannot be a teacher
    enc = encoders.create("imagebind_test", modalities=("audio",), checkpoint=False)
    encoders.save_modalities(enc, tmp_path / "audio_only")
    with pytest.raises(ConfigError, match="no open_clip vision tower"):
        load_teacher(TeacherConfig(model=f"rebind:{tmp_path / 'audio_only'}"))
