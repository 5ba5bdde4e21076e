"""What NAdam, RAdam and Adamax share with Adam: their hyper-parameters, declared once."""

from __future__ import annotations

from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import HyperParameter
from fastoptim.optim.hyperparameters import check_betas, check_flag

BETAS = HyperParameter(
    "betas", (0.9, 0.999), check_betas, "Decay rates of the two moments, each in [0, 1)."
)
DECOUPLED_WEIGHT_DECAY = HyperParameter(
    "decoupled_weight_decay",
    False,
    check_flag,
    "Decay the parameter by :math:`1 - \\eta \\lambda` before the step (as AdamW) instead "
    "of adding :math:`\\lambda \\theta` to the gradient.",
)
WEIGHT_DECAY = shared.nonnegative(
    "weight_decay", "Weight decay :math:`\\lambda` >= 0 (L2, or decoupled: see below)."
)


def weight_decays(settings, lr: float, weight_decay: float) -> tuple[float, float]:
    """``(L2 decay added to the gradient, factor the parameter is scaled by first)``: one
    of them is off, as ``decoupled_weight_decay`` says."""
    if settings.decoupled_weight_decay:
        return 0.0, 1.0 - lr * weight_decay
    return weight_decay, 1.0
