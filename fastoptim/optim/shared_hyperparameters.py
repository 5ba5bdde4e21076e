"""Hyper-parameters several algorithms share, declared once (see declaration.py)."""

from __future__ import annotations

from fastoptim.optim.declaration import HyperParameter
from fastoptim.optim.hyperparameters import check_epsilon, check_flag, check_nonnegative
from fastoptim.optim.state_dtypes import (
    BLOCK_SIZES,
    STATE_DTYPES,
    check_block_size,
    check_state_dtype_name,
)

MAXIMIZE = HyperParameter(
    "maximize",
    False,
    check_flag,
    "Ascend instead of descend (the gradient's sign is flipped).",
    keyword_only=True,
)
STATE_DTYPE = HyperParameter(
    "state_dtype",
    None,
    check_state_dtype_name,
    f"How the state is stored: one of {list(STATE_DTYPES)}; None: the parameters' dtype. "
    "``'bfloat16'`` (float32 parameters) keeps each state element in 16 bits, "
    "stochastically rounded on every store: half the memory and traffic of float32 state. "
    "``'int8'`` (float32 parameters) keeps 8-bit codes and one float32 scale per block of "
    "``block_size`` elements (layers below 4096 elements stay float32): about a quarter of "
    "the memory.",
    keyword_only=True,
    decides_state=True,
    in_torch=False,
)
BLOCK_SIZE = HyperParameter(
    "block_size",
    None,
    check_block_size,
    f"int8 state only: elements per block of codes sharing one float32 scale, one of "
    f"{list(BLOCK_SIZES)}; None: 256. Smaller blocks follow the values more closely and "
    "store more scales (4 bytes per block per state).",
    keyword_only=True,
    decides_state=True,
    in_torch=False,
)
# how the state is stored: every algorithm whose state is moving averages takes both
STORAGE = (STATE_DTYPE, BLOCK_SIZE)
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
