"""What NAdam and RAdam share with Adam: hyper-parameters and the first kernel scalars,
declared once (Adamax takes the betas)."""

from __future__ import annotations

import math

from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.adam import BOUND_SLACK, moment_ratio_bound
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


def moment_scalars(settings, lr: float, weight_decay: float, grad_scale: float) -> tuple:
    """The first scalars of NAdam's and RAdam's kernels, in their order: ``(sign, L2 decay
    added to the gradient, factor the parameter is scaled by first, beta1, 1 - beta1,
    beta2, 1 - beta2)``; one of the decays is off, as ``decoupled_weight_decay`` says."""
    beta1, beta2 = settings.betas
    if settings.decoupled_weight_decay:
        l2, decay = 0.0, 1.0 - lr * weight_decay
    else:
        l2, decay = weight_decay, 1.0
    sign = -grad_scale if settings.maximize else grad_scale
    return (sign, l2, decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2)


def int8_bound(settings, t: int) -> float:
    """``m_bound`` of step ``t``: Adam's moment ratio bound with int8 state, else inf."""
    if settings.state_dtype != "int8":
        return math.inf
    beta1, beta2 = settings.betas
    return BOUND_SLACK * moment_ratio_bound(beta1, beta2, t)
