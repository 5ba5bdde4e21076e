"""RMSprop (Hinton; Graves 2013 for the centered form), exactly as torch.optim.RMSprop."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.groups import Group
from fastoptim.optim.hyperparameters import (
    check_beta,
    check_epsilon,
    check_flag,
    check_lr_or_schedule,
    check_max_norm,
    check_nonnegative,
)
from fastoptim.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop in ``torch.optim.RMSprop``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1} \\
        s_t &= \alpha\, s_{t-1} + (1 - \alpha)\, g_t^2 \\
        \bar g_t &= \bar g_{t-1} + (1 - \alpha)(g_t - \bar g_{t-1})
                    \quad\text{(centered only)} \\
        d_t &= \sqrt{s_t - \bar g_t^2} + \epsilon \ \text{(centered)}, \quad
               \sqrt{s_t} + \epsilon \ \text{(otherwise)} \\
        b_t &= \mu\, b_{t-1} + g_t / d_t, \quad \theta_t = \theta_{t-1} - \eta\, b_t
               \quad\text{(momentum } \mu > 0\text{)}, \\
        \theta_t &= \theta_{t-1} - \eta\, g_t / d_t \quad\text{(otherwise)}

    Only the buffers the options need are kept: ``state['square_avg']`` always,
    ``state['grad_avg']`` when centered, ``state['momentum_buffer']`` with momentum.

    Parameters
    ----------
    params : FlatParams or dict of arrays
        A dict is flattened into one buffer and its entries are rebound to the live views.
    lr : float or schedule
        Learning rate :math:`\eta` (default 1e-2, as torch).
    alpha : float
        Smoothing constant :math:`\alpha` in [0, 1) (default 0.99).
    eps : float
        Added to the denominator, finite and > 0 (default 1e-8).
    weight_decay : float
        L2 penalty :math:`\lambda` >= 0.
    momentum : float
        :math:`\mu` >= 0.
    centered : bool
        Normalise by an estimate of the gradient's variance.
    max_grad_norm : float or None
        Clip by global norm before each step, as in :class:`Adam`.
    maximize : bool
        Ascend instead of descend.
    groups : list of Group, optional
        Layers with their own ``lr`` or ``weight_decay``, or frozen; see :class:`fastoptim.Group`.
    nonfinite, max_consecutive_skips
        What a step does with NaN or Inf in the gradients; see :class:`Optimizer`.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.RMSprop({"w": np.ones(2)}, lr=0.01, alpha=0.75)
    >>> opt.step({"w": np.full(2, 3.0)})   # 1 - 0.01 * 3 / sqrt(0.25 * 9)
    >>> opt.params["w"]
    array([0.98, 0.98])
    """

    kernel = kernels.rmsprop

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        groups: Sequence[Group | Mapping[str, Any]] | None = None,
    ) -> None:
        self.centered = check_flag(centered, "centered")
        self.uses_momentum = check_nonnegative(momentum, "momentum") != 0.0
        self._set_hyperparameters(
            lr, alpha, eps, weight_decay, momentum, centered, maximize, max_grad_norm
        )
        self.state_names = (
            ("square_avg",)
            + (("grad_avg",) if self.centered else ())
            + (("momentum_buffer",) if self.uses_momentum else ())
        )
        super().__init__(params, nonfinite, max_consecutive_skips, groups)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self._lr_setting(),
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
            "maximize": self.maximize,
            "max_grad_norm": self.max_grad_norm,
        }

    def _set_hyperparameters(
        self,
        lr: float,
        alpha: float,
        eps: float,
        weight_decay: float,
        momentum: float,
        centered: bool,
        maximize: bool,
        max_grad_norm: float | None = None,
    ) -> None:
        checked = (
            check_lr_or_schedule(lr, getattr(self, "t", 0) + 1),
            check_beta(alpha, "alpha", "alpha value"),
            check_epsilon(eps),
            check_nonnegative(weight_decay, "weight_decay"),
            check_nonnegative(momentum, "momentum"),
            check_flag(maximize, "maximize"),
        )
        max_norm = check_max_norm(max_grad_norm)
        if check_flag(centered, "centered") != self.centered or (
            (checked[4] != 0.0) != self.uses_momentum
        ):
            raise ValueError(
                "centered and momentum on/off decide which state buffers exist; construct "
                f"the optimizer with them (this one: centered={self.centered}, "
                f"momentum {'on' if self.uses_momentum else 'off'})"
            )
        self.lr, self.alpha, self.eps, self.weight_decay, self.momentum, self.maximize = checked
        self.max_grad_norm = max_norm

    def _kernel_state_order(self) -> tuple[str | None, ...]:
        # the kernel always takes (square_avg, grad_avg, momentum_buffer)
        return (
            "square_avg",
            "grad_avg" if self.centered else None,
            "momentum_buffer" if self.uses_momentum else None,
        )

    def _scalars(self, t: int, lr: float, weight_decay: float) -> tuple[float, ...]:
        return (
            -self._grad_scale if self.maximize else self._grad_scale,
            weight_decay,
            self.alpha,
            1.0 - self.alpha,
            self.eps,
            1.0 if self.centered else 0.0,
            1.0 if self.uses_momentum else 0.0,
            self.momentum,
            lr,
        )
