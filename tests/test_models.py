import pytest
import torch
from torch import nn

from akp.models import ModelError, ModelSpec, SmallCNN, build_model


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_named_layers(channels):
    spec = ModelSpec(width=4, depth=3, embedding_dim=10)
    model = build_model(spec, 0, in_channels=channels, n_classes=2)
    x = torch.rand(5, channels, 32, 32)
    logits, feats = model(x, frozenset(spec.layer_names()))
    assert logits.shape == (5, 2)
    assert spec.layer_names() == ["conv1", "conv2", "conv3", "embedding", "logits"]
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "conv1": (5, 4), "conv2": (5, 8), "conv3": (5, 16), "embedding": (5, 10), "logits": (5, 2)}
    _, grid = model(x, frozenset({"conv2"}), conv_reduce="grid2")
    assert grid["conv2"].shape == (5, 8 * 4)
    assert torch.equal(feats["logits"], logits)


def test_same_seed_same_weights_other_seed_other_weights():
    spec = ModelSpec(width=4, depth=2, embedding_dim=8)
    a, b, c = (build_model(spec, s, in_channels=1, n_classes=2) for s in (7, 7, 8))
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=False):
        assert torch.equal(va, vb), k
        assert not torch.equal(va, vc), k


def test_build_model_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(ModelSpec(), 5, in_channels=1, n_classes=2)
    assert torch.equal(torch.rand(3), expected)


def test_no_batchnorm_running_statistics():
    model = SmallCNN(ModelSpec(depth=4), 3, 2)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert list(model.buffers()) == []


@pytest.mark.parametrize("field, value", [("width", 0), ("depth", 7), ("embedding_dim", 1.5)])
def test_invalid_model_spec_names_the_field(field, value):
    with pytest.raises(ModelError, match=f"model.{field}: must be an integer from"):
        ModelSpec.from_dict({field: value})
