"""Hot-swappable activation and loss functions.

A swap replaces the *function* a module applies, never its parameters: the
model's weights and the optimizer's state are untouched, which is what makes
a swap a perturbation of training rather than a restart.

Besides the usual working functions, the registries hold functions whose job
is to make a run fail in a *named* way, so that an experiment's unhappy family
is not one failure mechanism (see the table in :mod:`akp.schedule`):

- ``hardtanh`` (clip to [-1, 1]): saturation with exactly zero gradient
  outside the linear band, without sigmoid's positive offset;
- ``sine_hf`` (``sin(SINE_FREQUENCY * x)``): a periodic activation of high
  frequency, whose features oscillate faster than the cells' morphology varies;
- ``frozen`` loss: reports cross entropy but gives zero gradient, so learning
  stops where the swap happens;
- ``flipped`` loss: cross entropy towards the wrong class, so a late swap
  destroys what was learnt;
- ``ramp`` loss: a bounded 0-1 surrogate that is flat (zero gradient) once an
  example's margin is past +-``RAMP_MARGIN``, so badly misclassified examples
  are never corrected.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ActivationFn = Callable[[Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]

#: Frequency ``k`` of the periodic ``sine_hf`` activation ``sin(k x)``.
SINE_FREQUENCY = 10.0
#: Half-width of the band of margins in which the ``ramp`` loss has a gradient.
RAMP_MARGIN = 0.05


def _hardtanh(x: Tensor) -> Tensor:
    """Hard tanh, ``clip(x, -1, 1)``: saturating, with zero gradient outside [-1, 1].

    For the saturation failure route that is not a sigmoid: outputs are
    centred, but every unit past the band passes a constant and no gradient.
    """
    return F.hardtanh(x)


def _sine_hf(x: Tensor) -> Tensor:
    """High-frequency periodic activation ``sin(SINE_FREQUENCY * x)``.

    For the periodic failure route: a small change of a pre-activation flips
    the feature's sign, so the network can fit its training images with
    features that do not carry over to new ones.
    """
    return torch.sin(SINE_FREQUENCY * x)


def _mse_softmax(logits: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between softmax probabilities and one-hot targets."""
    onehot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
    return F.mse_loss(torch.softmax(logits, dim=-1), onehot)


def _hinge(logits: Tensor, target: Tensor) -> Tensor:
    """Crammer-Singer style multi-class hinge loss (margin 1), as in torch's MultiMarginLoss."""
    return F.multi_margin_loss(logits, target)


def _focal(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Focal loss (Lin et al. 2017): cross entropy down-weighted on easy examples."""
    logp = F.log_softmax(logits, dim=-1).gather(-1, target[..., None]).squeeze(-1)
    return (-(1.0 - logp.exp()) ** gamma * logp).mean()


def _smoothed_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Cross entropy with label smoothing 0.1."""
    return F.cross_entropy(logits, target, label_smoothing=0.1)


def _frozen(logits: Tensor, target: Tensor) -> Tensor:
    """Cross entropy as a value, with zero gradient: learning stops ("frozen" loss).

    For the no-learning-signal failure route. The value is the cross entropy
    of the current logits, so the metrics stay readable; the graph is kept
    (``0 * logits``) so ``backward`` runs and gives exact zeros. Note that an
    optimizer with momentum (Adam, SGD 0.9) still moves the weights for a few
    steps after the swap as its momentum decays.
    """
    return F.cross_entropy(logits.detach(), target) + 0.0 * logits.sum()


def _flipped(logits: Tensor, target: Tensor) -> Tensor:
    """Cross entropy towards the next class, ``(target + 1) % n_classes``.

    For the destructive late-swap failure route: for two classes it trains the
    model to answer the opposite, undoing what it learnt.
    """
    return F.cross_entropy(logits, (target + 1) % logits.shape[-1])


def _ramp(logits: Tensor, target: Tensor, margin: float = RAMP_MARGIN) -> Tensor:
    """Ramp loss: a 0-1 surrogate, flat (zero gradient) past +-``margin``.

    With ``m = z_target - max_{j != target} z_j``, the per-example loss is
    ``clip((margin - m) / (2 margin), 0, 1)``: 0 for ``m >= margin``, 1 for
    ``m <= -margin``, linear in between. Only examples within the margin band
    give a gradient, so examples on the wrong side are never pulled back: the
    vanishing-loss-gradient failure route.
    """
    true = logits.gather(-1, target[..., None]).squeeze(-1)
    others = logits.scatter(-1, target[..., None], float("-inf")).amax(-1)
    return ((margin - (true - others)) / (2.0 * margin)).clamp(0.0, 1.0).mean()


ACTIVATIONS: dict[str, ActivationFn] = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "identity": lambda x: x,
    "hardtanh": _hardtanh,
    "sine_hf": _sine_hf,
}

LOSSES: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "mse": _mse_softmax,
    "hinge": _hinge,
    "focal": _focal,
    "label_smoothing": _smoothed_ce,
    "frozen": _frozen,
    "flipped": _flipped,
    "ramp": _ramp,
}


def _check(name: str, registry: dict, field: str) -> None:
    if name not in registry:
        allowed = ", ".join(sorted(registry))
        raise ValueError(f"{field}: unknown function {name!r}; allowed: {allowed}")


def get_activation(name: str) -> ActivationFn:
    """Return the activation function registered as ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`ACTIVATIONS`.
    """
    _check(name, ACTIVATIONS, "activation")
    return ACTIVATIONS[name]


def get_loss(name: str) -> LossFn:
    """Return the loss function registered as ``name`` (logits, targets) -> scalar.

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`LOSSES`.
    """
    _check(name, LOSSES, "loss")
    return LOSSES[name]


class SwappableActivation(nn.Module):
    """An activation module whose function can be replaced in place.

    Parameters
    ----------
    name : str
        Initial activation, a key of :data:`ACTIVATIONS`.
    """

    def __init__(self, name: str = "relu") -> None:
        super().__init__()
        self.name = name
        self.fn = get_activation(name)

    def swap(self, name: str) -> None:
        """Switch to activation ``name``; no parameters or buffers change."""
        self.fn = get_activation(name)
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def swap_activation(model: nn.Module, name: str) -> int:
    """Swap every :class:`SwappableActivation` in ``model`` to ``name``.

    Parameters
    ----------
    model : nn.Module
        The model to modify in place.
    name : str
        The new activation.

    Returns
    -------
    int
        How many activation modules were swapped.

    Raises
    ------
    ValueError
        If ``name`` is not a registered activation.
    """
    get_activation(name)
    count = 0
    for module in model.modules():
        if isinstance(module, SwappableActivation):
            module.swap(name)
            count += 1
    return count
