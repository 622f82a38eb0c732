"""Hot-swappable activation and loss functions.

A swap replaces the *function* a module applies, never its parameters: the
model's weights and the optimizer's state are untouched, which is what makes
a swap a perturbation of training rather than a restart.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ActivationFn = Callable[[Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


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
}

LOSSES: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "mse": _mse_softmax,
    "hinge": _hinge,
    "focal": _focal,
    "label_smoothing": _smoothed_ce,
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
