"""OWLv2 (transformers) behind the detector interface, with a tiny random model built from a config."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import adapters
import adapters.detic as detic
from detic_helpers import random_image, tiny_encoders, write_sounds
from encoders.bridge import Bridge
from encoders.spaces import ClipSpace, register_space

transformers = pytest.importorskip("transformers")

OWL_SPACE = register_space(ClipSpace("owlv2-tiny-test", 32, None, None, "tiny random OWLv2 (tests)"))


@pytest.fixture(scope="module")
def owl_parts():
    torch.manual_seed(0)
    config = transformers.Owlv2Config(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=1000, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=64, patch_size=16),
        projection_dim=32)
    model = transformers.Owlv2ForObjectDetection(config).eval()
    # random box heads saturate to degenerate boxes; zero the last layer so boxes sit on the patch grid
    torch.nn.init.zeros_(model.box_head.dense2.weight)
    torch.nn.init.zeros_(model.box_head.dense2.bias)
    # offline tokenizer; id 0 is padding because forward() masks queries whose first id is 0
    tokenizer = transformers.CLIPTokenizer(vocab={"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}, merges=[],
                                           pad_token="!", model_max_length=16)
    return model, tokenizer


@pytest.fixture
def owl(owl_parts):
    model, tokenizer = owl_parts
    return detic.OwlDetector(model, space=OWL_SPACE.name, tokenizer=tokenizer)


def test_custom_queries_reproduce_owl_forward_exactly(owl, owl_parts):
    model, tokenizer = owl_parts
    image = random_image(64, 64)
    pixels = owl.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    tokens = tokenizer(["a dog"], padding="max_length", return_tensors="pt")
    with torch.no_grad():
        reference = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                          pixel_values=pixels)
    with owl.prompted(owl.embed_text(["a dog"])):
        with torch.no_grad():
            logits, boxes = owl.predict(pixels)
    assert torch.allclose(logits, reference.logits, atol=1e-5)
    assert torch.allclose(boxes, reference.pred_boxes)


def test_swap_installs_unit_queries_and_restores_the_same_buffer(owl):
    before = owl.class_embeddings
    queries = 5 * torch.randn(3, 32)
    with owl.prompted(queries, names=["a", "b", "c"]) as prompted:
        assert torch.allclose(owl.class_embeddings, F.normalize(queries, dim=-1), atol=1e-6)
        pixels = owl.image_processor(images=[random_image(64, 64)], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits, _ = owl.predict(pixels)
        assert logits.shape[-1] == 3  # N queries -> N classes
        found = prompted.detect(random_image(), threshold=0.0)
        assert int(found.labels.max()) < 3
    assert owl.class_embeddings is before and owl.num_classes == 0


def test_boxes_come_back_in_input_pixels_of_a_non_square_image(owl):
    with owl.prompted(torch.randn(2, 32), threshold=0.0) as prompted:
        found = prompted.detect(random_image(40, 160))
    assert found.image_size == (160, 40) and len(found) > 0
    assert (found.boxes[:, 2] <= 160).all() and (found.boxes[:, 3] <= 40).all() and (found.boxes >= 0).all()
    # with the zeroed box layer every box is its patch's grid box: OWLv2 pads the image to a 160-px
    # square at the bottom/right, so only the top row of patches (y 20..60, clipped to 40) is inside
    grid = torch.tensor([[20.0, 20.0, 60.0, 40.0], [60.0, 20.0, 100.0, 40.0], [100.0, 20.0, 140.0, 40.0],
                         [140.0, 20.0, 160.0, 40.0]])
    distance = (found.boxes[:, None, :] - grid[None]).abs().amax(dim=-1).amin(dim=1)
    assert (distance < 0.1).all(), found.boxes


def test_audio_needs_an_encoder_or_bridge_into_owl_space(owl, tmp_path):
    enc = tiny_encoders()
    sounds = write_sounds(tmp_path, names=("dog", "bell"))
    with pytest.raises(ValueError) as err:
        detic.from_audio(sounds, detector=owl, encoder=enc)
    message = str(err.value)
    assert "test-32" in message and "owlv2-tiny-test" in message
    assert "image tower" in message and "bridge" in message
    torch.manual_seed(1)
    bridge = Bridge("test-32", OWL_SPACE.name, torch.randn(32, 32), torch.zeros(32), torch.zeros(32))
    with detic.from_audio(sounds, detector=owl, encoder=enc, bridge=bridge, threshold=0.0) as prompted:
        expected = bridge(adapters.embed(sounds, "audio", encoder=enc).vectors)
        assert torch.allclose(owl.get_class_embeddings(), expected, atol=1e-5)
        assert prompted.class_names == ["dog", "bell"]
        assert len(prompted.detect(random_image())) > 0


def test_from_text_uses_owls_own_text_tower(owl):
    with detic.from_text(["a dog", "a bell"], detector=owl) as prompted:
        assert prompted.class_names == ["a dog", "a bell"]
        assert torch.allclose(owl.get_class_embeddings(), owl.embed_text(["a dog", "a bell"]).vectors)


def test_space_must_be_known(owl_parts):
    model, _ = owl_parts
    with pytest.raises(ValueError, match="pass space="):
        detic.OwlDetector(model)
    with pytest.raises(ValueError, match="32-d queries"):
        detic.OwlDetector(model, space="test-16")
    assert detic.load_detector(model, space=OWL_SPACE.name).space.name == OWL_SPACE.name


def test_owl_vit_v1_stretches_instead_of_padding():
    torch.manual_seed(0)
    config = transformers.OwlViTConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=1000, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=64, patch_size=16),
        projection_dim=32)
    model = transformers.OwlViTForObjectDetection(config).eval()
    torch.nn.init.zeros_(model.box_head.dense2.weight)
    torch.nn.init.zeros_(model.box_head.dense2.bias)
    owl = detic.OwlDetector(model, space=OWL_SPACE.name)
    assert not owl.is_v2
    with owl.prompted(torch.randn(2, 32), threshold=0.0) as prompted:
        found = prompted.detect(random_image(40, 160))
    # grid boxes as fractions of each side: x in quarters of 160, y in quarters of 40
    xs = {round(v, 1) for v in found.boxes[:, [0, 2]].flatten().tolist()}
    ys = {round(v, 1) for v in found.boxes[:, [1, 3]].flatten().tolist()}
    assert len(found) > 0 and xs <= {20.0, 60.0, 100.0, 140.0, 160.0} and ys <= {5.0, 15.0, 25.0, 35.0, 40.0}
