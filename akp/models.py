"""A small CNN whose activations can be hot-swapped and whose layers can be captured.

No BatchNorm: running statistics would make the seeds of a condition trained as
one vectorized model (``akp.vectorized``) differ from sequential runs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from akp.constraints import MODEL, check_fields
from akp.errors import AKPError
from akp.swaps import SwappableActivation

# Each conv layer doubles the channels of the one before, up to this many times conv1's width.
MAX_WIDTH_DOUBLINGS = 2
# Images arrive in [0, 1]; a fixed affine map centres them (a constant, not running statistics,
# so a vectorized group computes exactly what sequential runs compute).
INPUT_SHIFT, INPUT_SCALE = 0.5, 4.0


class ModelError(AKPError):
    """A model spec is invalid; the message names the field and what is allowed."""


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of :class:`SmallCNN`.

    Parameters
    ----------
    width : int
        Channels of the first conv layer; each later layer doubles it, up to 4x.
    depth : int
        Number of conv layers (1 to 6), named ``conv1`` .. ``convK``.
    embedding_dim : int
        Width of the ``embedding`` layer before the classifier.
    """

    width: int = 16
    depth: int = 3
    embedding_dim: int = 64

    def validate(self) -> None:
        """Raise :class:`ModelError` (its ``field`` is ``model.NAME``) if a field is out of range."""
        check_fields(asdict(self), MODEL, ModelError, prefix="model.")

    def conv_widths(self) -> list[int]:
        """Output channels of each conv layer, conv1 first."""
        return [self.width * 2 ** min(i, MAX_WIDTH_DOUBLINGS) for i in range(self.depth)]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "ModelSpec":
        """Build from a dict, rejecting unknown fields.

        Raises
        ------
        ModelError
            If ``data`` is not a dict or has unknown or invalid fields.
        """
        if not isinstance(data, dict):
            raise ModelError("model: must be an object with width, depth, embedding_dim", field="model")
        check_fields(data, MODEL, ModelError, prefix="model.")
        spec = cls(**data)
        spec.validate()
        return spec

    def layer_names(self) -> list[str]:
        """Names of the capturable representation layers, input to output."""
        return [f"conv{i + 1}" for i in range(self.depth)] + ["embedding", "logits"]


class SmallCNN(nn.Module):
    """Conv -> activation -> pool blocks, global average pool, embedding, logits.

    Parameters
    ----------
    spec : ModelSpec
        Architecture.
    in_channels : int
        1 (grayscale) or 3 (RGB).
    n_classes : int
        Number of output classes.
    activation : str
        Starting activation for every layer.
    """

    def __init__(self, spec: ModelSpec, in_channels: int = 1, n_classes: int = 2,
                 activation: str = "relu") -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        widths = spec.conv_widths()
        chans = [in_channels, *widths]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(spec.depth))
        self.acts = nn.ModuleList(SwappableActivation(activation) for _ in range(spec.depth + 1))
        self.fc = nn.Linear(widths[-1], spec.embedding_dim)
        self.head = nn.Linear(spec.embedding_dim, n_classes)

    @property
    def activation(self) -> str:
        """Name of the activation currently in force."""
        return self.acts[0].name

    def forward(self, x: Tensor, capture: frozenset[str] | set[str] = frozenset(),
                conv_reduce: str = "mean") -> tuple[Tensor, dict[str, Tensor]]:
        """Return logits and the captured layers, each reduced to (batch, features).

        Parameters
        ----------
        x : Tensor (batch, C, H, W)
        capture : set of str
            Layer names to return (see :meth:`ModelSpec.layer_names`).
        conv_reduce : {"mean", "grid2"}
            How conv maps are reduced: global average per channel, or a 2x2 pooled grid.
        """
        feats: dict[str, Tensor] = {}
        x = (x - INPUT_SHIFT) * INPUT_SCALE
        for i, (conv, act) in enumerate(zip(self.convs, self.acts, strict=False)):
            x = act(conv(x))
            name = f"conv{i + 1}"
            if name in capture:
                feats[name] = _reduce(x, conv_reduce)
            if x.shape[-1] > 4:
                x = F.max_pool2d(x, 2)
        x = x.mean(dim=(-2, -1))
        emb = self.acts[-1](self.fc(x))
        if "embedding" in capture:
            feats["embedding"] = emb
        logits = self.head(emb)
        if "logits" in capture:
            feats["logits"] = logits
        return logits, feats


def _reduce(x: Tensor, how: str) -> Tensor:
    if how == "mean":
        return x.mean(dim=(-2, -1))
    return F.adaptive_avg_pool2d(x, 2).flatten(1)


def build_model(spec: ModelSpec, seed: int, *, in_channels: int, n_classes: int,
                activation: str = "relu") -> SmallCNN:
    """Build a :class:`SmallCNN` with initial weights determined by ``seed`` alone.

    Uses a private generator (not the global RNG) so that runs in several
    threads, and the vectorized trainer, get exactly the same weights
    for the same seed. Weights and biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    PyTorch's default scale.

    Parameters
    ----------
    spec : ModelSpec
    seed : int
    in_channels, n_classes : int
    activation : str

    Returns
    -------
    SmallCNN
    """
    with torch.device("meta"):  # no default init: it would draw from (and race on) the global RNG
        model = SmallCNN(spec, in_channels, n_classes, activation)
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                bound = fan_in ** -0.5
                module.weight.uniform_(-bound, bound, generator=gen)
                module.bias.uniform_(-bound, bound, generator=gen)
    return model
