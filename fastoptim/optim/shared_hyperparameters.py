"""Hyper-parameters several algorithms share, declared once (see declaration.py)."""

from __future__ import annotations

from fastoptim.optim.declaration import HyperParameter
from fastoptim.optim.hyperparameters import check_epsilon, check_flag, check_nonnegative

MAXIMIZE = HyperParameter(
    "maximize",
    False,
    check_flag,
    "Ascend instead of descend (the gradient's sign is flipped).",
    keyword_only=True,
)
L2_WEIGHT_DECAY = HyperParameter(
    "weight_decay",
    0.0,
    check_nonnegative,
    "L2 penalty :math:`\\lambda` >= 0 added to the gradient.",
)


def learning_rate(default: float) -> HyperParameter:
    """``lr`` with this default (torch's for the algorithm)."""
    return HyperParameter(
        "lr", default, None, "Learning rate :math:`\\eta`, finite and >= 0, or a schedule."
    )


def epsilon(default: float) -> HyperParameter:
    """``eps`` with this default."""
    return HyperParameter(
        "eps", default, check_epsilon, "Added to the denominator, finite and > 0."
    )


def nonnegative(name: str, doc: str, decides_state: bool = False) -> HyperParameter:
    """A finite number >= 0 with default 0 (momentum, dampening, decays)."""
    return HyperParameter(name, 0.0, check_nonnegative, doc, decides_state=decides_state)
