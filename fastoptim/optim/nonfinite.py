"""What an optimizer does with NaN or Inf in the gradients: raise, skip the step, or ignore."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from fastoptim import kernels
from fastoptim.optim.hyperparameters import check_step

POLICIES = ("raise", "skip", "ignore")


class NonFiniteGradientError(FloatingPointError):
    """Gradients held NaN or Inf; the optimizer, its parameters and its state are unchanged."""


class NonFiniteGuard:
    """The ``nonfinite=`` policy of an optimizer and its counters.

    ``'skip'``: a step whose gradients hold NaN or Inf changes nothing (parameters, state,
    ``t``); ``skipped_steps`` counts such steps, ``last_skipped_layers`` names the layers,
    a ``RuntimeWarning`` says so, and more than ``max_consecutive_skips`` in a row raise
    :class:`NonFiniteGradientError` (``None``: never). ``'raise'``: the first such step
    raises. ``'ignore'``: no check; NaN and Inf flow into the update as in the reference.
    The check reads every gradient once more, in parallel; its answer does not depend on
    the number of threads.
    """

    def __init__(self, policy: str = "skip", max_consecutive_skips: int | None = 10) -> None:
        if policy not in POLICIES:
            raise ValueError(f"Invalid nonfinite policy: {policy!r} (use one of {POLICIES})")
        if max_consecutive_skips is not None:
            max_consecutive_skips = check_step(max_consecutive_skips, "max_consecutive_skips", 0)
        self.policy = policy
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_steps = 0
        self.consecutive_skips = 0
        self.last_skipped_layers: list[str] = []

    def allows(
        self,
        grads: Sequence[np.ndarray],
        offending: Callable[[], list[str]],
        known_finite: bool | None = None,
    ) -> bool:
        """Whether the step may go ahead with these 1-D gradient arrays.

        False means: skip it. Raises for 'raise', and for 'skip' past the limit.
        ``offending()`` names the layers holding NaN or Inf; it is only called when some do.
        ``known_finite``: the answer, when a pass over the gradients already gave it (the
        clipping norm is finite exactly when every gradient is); then nothing is read again.
        """
        if known_finite is None and self.policy != "ignore":
            known_finite = kernels.finite.all_finite(grads)
        if self.policy == "ignore" or known_finite:
            self.consecutive_skips = 0
            return True
        layers = offending()
        shown = f"{layers[:8]}" + (f" and {len(layers) - 8} more" if len(layers) > 8 else "")
        if self.policy == "raise":
            raise NonFiniteGradientError(
                f"grads[{layers[0]!r}] holds NaN or Inf (layers: {shown}); nothing was changed. "
                "Look for an overflow or a division by zero in the backward pass, or pass "
                "nonfinite='skip' to skip such steps."
            )
        if self.max_consecutive_skips is not None and (
            self.consecutive_skips >= self.max_consecutive_skips
        ):
            raise NonFiniteGradientError(
                f"{self.consecutive_skips + 1} steps in a row had NaN or Inf gradients (now in "
                f"{shown}); stopping instead of skipping again. Nothing was changed. Raise "
                "max_consecutive_skips, or fix the backward pass."
            )
        self.skipped_steps += 1
        self.consecutive_skips += 1
        self.last_skipped_layers = layers
        warnings.warn(
            f"step skipped: NaN or Inf in grads of {shown}; parameters, state and t unchanged "
            f"({self.skipped_steps} skipped so far)",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
