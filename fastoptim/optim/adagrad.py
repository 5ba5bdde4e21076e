"""Adagrad (Duchi, Hazan & Singer, 2011), exactly as torch.optim.Adagrad."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.groups import Group
from fastoptim.optim.hyperparameters import (
    check_epsilon,
    check_flag,
    check_lr_or_schedule,
    check_max_norm,
    check_nonnegative,
)
from fastoptim.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad in ``torch.optim.Adagrad``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1} \\
        s_t &= s_{t-1} + g_t^2, \qquad s_0 = \text{initial\_accumulator\_value} \\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 + (t - 1)\, \delta}
                    \cdot \frac{g_t}{\sqrt{s_t} + \epsilon}

    Parameters
    ----------
    params : FlatParams or dict of arrays
        A dict is flattened into one buffer and its entries are rebound to the live views.
    lr : float
        Learning rate :math:`\eta` (default 1e-2, as torch).
    lr_decay : float
        :math:`\delta` >= 0.
    weight_decay : float
        L2 penalty :math:`\lambda` >= 0 added to the gradient.
    initial_accumulator_value : float
        :math:`s_0` >= 0, the starting value of ``state['sum']``.
    eps : float
        Added to the denominator, finite and > 0 (default 1e-10, as torch).
    max_grad_norm : float or None
        Clip by global norm before each step, as in :class:`Adam`.
    maximize : bool
        Ascend instead of descend.
    groups : list of Group, optional
        Layers with their own ``lr`` or ``weight_decay``, or frozen; see :class:`fastoptim.Group`.
    nonfinite, max_consecutive_skips
        What a step does with NaN or Inf in the gradients; see :class:`Optimizer`.

    References
    ----------
    J. Duchi, E. Hazan and Y. Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.Adagrad({"w": np.ones(2)}, lr=0.1)
    >>> opt.step({"w": np.full(2, 2.0)})   # g / sqrt(g**2) = 1
    >>> opt.params["w"]
    array([0.9, 0.9])
    """

    kernel = kernels.adagrad
    state_names = ("sum",)

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        groups: Sequence[Group | Mapping[str, Any]] | None = None,
    ) -> None:
        initial = check_nonnegative(initial_accumulator_value, "initial_accumulator_value")
        self._set_hyperparameters(lr, lr_decay, weight_decay, initial, eps, maximize, max_grad_norm)
        super().__init__(params, nonfinite, max_consecutive_skips, groups)
        self.state["sum"].buffer.fill(initial)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self._lr_setting(),
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.eps,
            "maximize": self.maximize,
            "max_grad_norm": self.max_grad_norm,
        }

    def _set_hyperparameters(
        self,
        lr: float,
        lr_decay: float,
        weight_decay: float,
        initial_accumulator_value: float,
        eps: float,
        maximize: bool,
        max_grad_norm: float | None = None,
    ) -> None:
        checked = (
            check_lr_or_schedule(lr, getattr(self, "t", 0) + 1),
            check_nonnegative(lr_decay, "lr_decay"),
            check_nonnegative(weight_decay, "weight_decay"),
            check_nonnegative(initial_accumulator_value, "initial_accumulator_value"),
            check_epsilon(eps),
            check_flag(maximize, "maximize"),
        )
        max_norm = check_max_norm(max_grad_norm)
        (
            self.lr,
            self.lr_decay,
            self.weight_decay,
            self.initial_accumulator_value,
            self.eps,
            self.maximize,
        ) = checked
        self.max_grad_norm = max_norm

    def _scalars(self, t: int, lr: float, weight_decay: float) -> tuple[float, ...]:
        return (
            -self._grad_scale if self.maximize else self._grad_scale,
            weight_decay,
            lr / (1.0 + (t - 1) * self.lr_decay),
            self.eps,
        )
