import math

import pytest
import torch
import torch.nn.functional as F

from akp.models import ModelSpec, build_model
from akp.swaps import ACTIVATIONS, LOSSES, SwappableActivation, get_activation, get_loss, swap_activation


def test_registries_hold_the_required_functions():
    assert {"relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus", "identity"} <= set(ACTIVATIONS)
    assert {"cross_entropy", "mse", "hinge", "focal", "label_smoothing"} <= set(LOSSES)


def test_activations_compute_their_definitions():
    x = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    assert torch.equal(get_activation("relu")(x), torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))
    assert torch.equal(get_activation("identity")(x), x)
    assert torch.allclose(get_activation("sigmoid")(x), 1 / (1 + torch.exp(-x)))
    assert torch.allclose(get_activation("softplus")(x), torch.log1p(torch.exp(x)))
    assert torch.allclose(get_activation("leaky_relu")(x), torch.tensor([-0.02, 0.0, 3.0], dtype=torch.float64))


def test_losses_match_known_values():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, target)
    assert torch.isclose(get_loss("cross_entropy")(logits, target), ce)
    p = torch.softmax(logits, 1)
    onehot = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert torch.isclose(get_loss("mse")(logits, target), ((p - onehot) ** 2).mean())
    # Multi-class hinge: sum_j!=y max(0, 1 - x_y + x_j) / C, averaged.
    expected_hinge = (max(0, 1 - 2 + 0) / 2 + max(0, 1 - 0 + 1) / 2) / 2
    assert math.isclose(float(get_loss("hinge")(logits, target)), expected_hinge)
    # Focal loss is below cross entropy and weights confident examples less.
    assert float(get_loss("focal")(logits, target)) < float(ce)
    assert float(get_loss("label_smoothing")(logits, target)) > 0


def test_unknown_function_names_list_allowed_values():
    with pytest.raises(ValueError, match="activation: unknown function 'swish9'; allowed: .*relu"):
        get_activation("swish9")
    with pytest.raises(ValueError, match="loss: unknown function 'l1'; allowed: .*cross_entropy"):
        get_loss("l1")


def test_swap_keeps_weights_and_optimizer_state_and_changes_the_function():
    torch.manual_seed(0)
    model = build_model(ModelSpec(width=4, depth=2, embedding_dim=8), 0, in_channels=1, n_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.rand(16, 1, 16, 16), torch.randint(0, 2, (16,))
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x)[0], y).backward()
        opt.step()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(opt.state.values())}
    before = model(x)[0].detach()

    assert swap_activation(model, "tanh") == 3  # two conv layers + embedding
    assert model.activation == "tanh"
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k])
    for i, s in enumerate(opt.state.values()):
        for k, v in s.items():
            assert torch.equal(v, opt_state[i][k])
    assert not torch.allclose(model(x)[0].detach(), before)


def test_swappable_activation_has_no_parameters():
    act = SwappableActivation("relu")
    act.swap("gelu")
    assert act.name == "gelu" and list(act.parameters()) == [] and list(act.buffers()) == []


def test_failure_functions_do_what_their_docstrings_say():
    import math

    import torch

    from akp.swaps import RAMP_MARGIN, SINE_FREQUENCY

    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 2.0])
    assert torch.allclose(ACTIVATIONS["hardtanh"](x), torch.tensor([-1.0, -0.5, 0.0, 0.3, 1.0]))
    assert torch.allclose(ACTIVATIONS["sine_hf"](x), torch.sin(SINE_FREQUENCY * x))
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.01], [-3.0, 3.0]], requires_grad=True)
    target = torch.tensor([0, 0, 0])
    frozen = LOSSES["frozen"](logits, target)
    assert frozen.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.detach(), target).item())
    frozen.backward()
    assert torch.count_nonzero(logits.grad) == 0
    logits.grad = None
    # Ramp: margin 3 (flat, loss 0), margin -0.01 (inside the band), margin -6 (flat, loss 1).
    ramp = LOSSES["ramp"](logits, target)
    assert ramp.item() == pytest.approx((0 + (RAMP_MARGIN + 0.01) / (2 * RAMP_MARGIN) + 1) / 3)
    ramp.backward()
    assert torch.count_nonzero(logits.grad[0]) == 0 and torch.count_nonzero(logits.grad[2]) == 0
    assert torch.count_nonzero(logits.grad[1]) == 2
    flipped = LOSSES["flipped"](torch.tensor([[5.0, -5.0]]), torch.tensor([0]))
    assert float(flipped) == pytest.approx(10.0 + math.log1p(math.exp(-10.0)), rel=1e-5)
