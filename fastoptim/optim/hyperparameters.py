"""Checks of hyper-parameters, shared by the optimizer classes and the course drop-ins."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from fastoptim import schedules


def _real(value: Any) -> bool:
    # a plain float first: these checks run on every call of a course drop-in, and the
    # abstract-class test costs more than the rest of the check
    return type(value) is float or (isinstance(value, numbers.Real) and not isinstance(value, bool))


def check_learning_rate(value: Any, name: str = "lr") -> float:
    """A finite learning rate >= 0, as a float."""
    if not (_real(value) and 0.0 <= value < math.inf):
        raise ValueError(f"Invalid learning rate: {value!r} ({name} must be a finite number >= 0)")
    return float(value)


def check_grad_scale(value: Any) -> float:
    """A finite factor > 0 for the gradients, as a float."""
    if not (_real(value) and 0.0 < value < math.inf):
        raise ValueError(f"Invalid grad_scale: {value!r} (it must be a finite number > 0)")
    return float(value)


def check_lr_or_schedule(value: Any, t: int) -> Any:
    """A learning rate (a float), or a schedule: a callable of the step number, or a
    schedule's ``describe()`` dict (from a state_dict). A schedule's rate for step ``t`` is
    checked now."""
    if isinstance(value, dict):
        value = schedules.from_description(value)
    if callable(value):
        check_learning_rate(value(t), f"lr({t})")
        return value
    return check_learning_rate(value, "lr")


def check_beta(value: Any, name: str, label: str = "beta value") -> float:
    """A decay rate in [0, 1), as a float."""
    if not (_real(value) and 0.0 <= value < 1.0):
        raise ValueError(f"Invalid {label}: {value!r} ({name} must be in [0, 1))")
    return float(value)


def check_fraction(value: Any, name: str, label: str) -> float:
    """A number in [0, 1] (Adadelta's rho), as a float."""
    if not (_real(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"Invalid {label}: {value!r} ({name} must be in [0, 1])")
    return float(value)


def _pair(value: Any, name: str, example: str) -> tuple[Any, Any]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"Invalid {name}: {value!r} (pass a pair such as {example})")
    return value[0], value[1]


def check_betas(value: Any, name: str = "betas") -> tuple[float, float]:
    """A pair ``(beta1, beta2)``, each in [0, 1)."""
    value = _pair(value, name, "(0.9, 0.999)")
    return tuple(  # type: ignore[return-value]
        check_beta(b, f"{name}[{i}]", f"beta parameter at index {i}") for i, b in enumerate(value)
    )


def check_etas(value: Any, name: str = "etas") -> tuple[float, float]:
    """Rprop's ``(etaminus, etaplus)`` with ``0 < etaminus < 1 < etaplus``."""
    minus, plus = _pair(value, name, "(0.5, 1.2)")
    if not (_real(minus) and _real(plus) and 0.0 < minus < 1.0 < plus < math.inf):
        raise ValueError(
            f"Invalid eta values: {minus!r}, {plus!r} ({name} must be (etaminus, etaplus) "
            "with 0 < etaminus < 1 < etaplus)"
        )
    return float(minus), float(plus)


def check_step_sizes(value: Any, name: str = "step_sizes") -> tuple[float, float]:
    """Rprop's ``(step_size_min, step_size_max)`` with ``0 <= min <= max`` (max may be
    inf)."""
    low, high = _pair(value, name, "(1e-6, 50)")
    if not (_real(low) and _real(high) and 0.0 <= low <= high and low < math.inf):
        raise ValueError(
            f"Invalid step sizes: {low!r}, {high!r} ({name} must be (min, max) with "
            "0 <= min <= max)"
        )
    return float(low), float(high)


def check_epsilon(value: Any, name: str = "eps") -> float:
    """A finite epsilon > 0, as a float."""
    if not (_real(value) and 0.0 < value < math.inf):
        raise ValueError(f"Invalid epsilon value: {value!r} ({name} must be a finite number > 0)")
    return float(value)


def check_step(value: Any, name: str = "t", first: int = 1) -> int:
    """A step number >= ``first``: 1 for the step being taken (bias corrections divide by
    ``1 - beta**t``, zero at t = 0), 0 for a count of steps already taken."""
    if not (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= first
    ):
        raise ValueError(
            f"Invalid step: {value!r} ({name} must be a whole number >= {first}; "
            "the first step is 1)"
        )
    return int(value)


def check_count(value: Any, name: str) -> int:
    """A whole number >= 0 (Schedule-Free's warmup_steps), as an int."""
    if not (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0
    ):
        raise ValueError(f"Invalid {name} value: {value!r} ({name} must be a whole number >= 0)")
    return int(value)


def check_nonnegative(value: Any, name: str) -> float:
    """A finite number >= 0 (weight_decay, momentum, dampening), as a float."""
    if not (_real(value) and 0.0 <= value < math.inf):
        raise ValueError(f"Invalid {name} value: {value!r} ({name} must be a finite number >= 0)")
    return float(value)


def check_max_norm(value: Any, name: str = "max_grad_norm") -> float | None:
    """A finite clipping norm > 0, as a float; None (no clipping) stays None."""
    if value is None:
        return None
    if not (_real(value) and 0.0 < value < math.inf):
        raise ValueError(f"Invalid {name}: {value!r} ({name} must be a finite number > 0, or None)")
    return float(value)


def check_accumulation_steps(value: Any, name: str = "accumulation_steps") -> int:
    """How many gradients one update averages: a whole number >= 1, as an int."""
    if not (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1
    ):
        raise ValueError(
            f"Invalid {name}: {value!r} ({name} must be a whole number >= 1; 1 updates on "
            "every step)"
        )
    return int(value)


def check_ema_decay(value: Any, name: str = "ema_decay") -> float | None:
    """A weight EMA's decay in [0, 1), as a float; None (no EMA) stays None."""
    if value is None:
        return None
    if not (_real(value) and 0.0 <= value < 1.0):
        raise ValueError(
            f"Invalid {name}: {value!r} ({name} must be a number in [0, 1), such as 0.999, or None)"
        )
    return float(value)


def check_flag(value: Any, name: str) -> bool:
    """A bool option such as ``amsgrad`` or ``maximize`` (numpy bools too, not 0/1)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_finite(value: Any, name: str) -> float:
    """A finite number of either sign (ASGD's t0), as a float."""
    if not (_real(value) and math.isfinite(value)):
        raise ValueError(f"Invalid {name} value: {value!r} ({name} must be a finite number)")
    return float(value)
