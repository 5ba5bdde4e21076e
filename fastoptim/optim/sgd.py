"""SGD with momentum, dampening, Nesterov and weight decay, exactly as torch.optim.SGD."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.groups import Group
from fastoptim.optim.hyperparameters import (
    check_flag,
    check_lr_or_schedule,
    check_max_norm,
    check_nonnegative,
)
from fastoptim.optim.optimizer import Optimizer


class SGD(Optimizer):
    r"""Stochastic gradient descent in ``torch.optim.SGD``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1} \\
        b_t &= \begin{cases} g_t & t = 1 \\ \mu\, b_{t-1} + (1 - \tau)\, g_t & t > 1 \end{cases} \\
        \theta_t &= \theta_{t-1} - \eta \cdot \begin{cases}
            g_t + \mu\, b_t & \text{nesterov} \\ b_t & \text{otherwise} \end{cases}

    With ``momentum=0`` the step is :math:`\theta_t = \theta_{t-1} - \eta\, g_t`. This is not
    the course's :class:`Momentum`, whose velocity starts at zero and averages with
    :math:`1 - \beta`.

    Parameters
    ----------
    params : FlatParams or dict of arrays
        A dict is flattened into one buffer and its entries are rebound to the live views.
    lr : float
        Learning rate :math:`\eta`, finite and >= 0 (default 1e-3, as torch).
    momentum : float
        :math:`\mu` >= 0; ``state['momentum_buffer']`` holds :math:`b`.
    dampening : float
        :math:`\tau` >= 0.
    weight_decay : float
        L2 penalty :math:`\lambda` >= 0 added to the gradient.
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``, as in torch.
    max_grad_norm : float or None
        Clip by global norm before each step, as in :class:`Adam`.
    maximize : bool
        Ascend instead of descend (the gradient's sign is flipped).
    groups : list of Group, optional
        Layers with their own ``lr`` or ``weight_decay``, or frozen; see :class:`fastoptim.Group`.
    nonfinite, max_consecutive_skips
        What a step does with NaN or Inf in the gradients; see :class:`Optimizer`.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.SGD({"w": np.ones(2)}, lr=0.1, momentum=0.9)
    >>> opt.step({"w": np.ones(2)})   # first step: the buffer is the gradient
    >>> opt.params["w"]
    array([0.9, 0.9])
    """

    kernel = kernels.sgd
    state_names = ("momentum_buffer",)

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        groups: Sequence[Group | Mapping[str, Any]] | None = None,
    ) -> None:
        self._set_hyperparameters(
            lr, momentum, dampening, weight_decay, nesterov, maximize, max_grad_norm
        )
        super().__init__(params, nonfinite, max_consecutive_skips, groups)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self._lr_setting(),
            "momentum": self.momentum,
            "dampening": self.dampening,
            "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
            "maximize": self.maximize,
            "max_grad_norm": self.max_grad_norm,
        }

    def _set_hyperparameters(
        self,
        lr: float,
        momentum: float,
        dampening: float,
        weight_decay: float,
        nesterov: bool,
        maximize: bool,
        max_grad_norm: float | None = None,
    ) -> None:
        checked = (
            check_lr_or_schedule(lr, getattr(self, "t", 0) + 1),
            check_nonnegative(momentum, "momentum"),
            check_nonnegative(dampening, "dampening"),
            check_nonnegative(weight_decay, "weight_decay"),
            check_flag(nesterov, "nesterov"),
            check_flag(maximize, "maximize"),
        )
        max_norm = check_max_norm(max_grad_norm)
        if checked[4] and (checked[1] <= 0.0 or checked[2] != 0.0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        (
            self.lr,
            self.momentum,
            self.dampening,
            self.weight_decay,
            self.nesterov,
            self.maximize,
        ) = checked
        self.max_grad_norm = max_norm

    def _scalars(self, t: int, lr: float, weight_decay: float) -> tuple[float, ...]:
        first = t == 1 or self.momentum == 0.0  # the buffer is the gradient itself
        return (
            -self._grad_scale if self.maximize else self._grad_scale,
            weight_decay,
            0.0 if first else self.momentum,
            1.0 if first else 1.0 - self.dampening,
            1.0 if self.momentum != 0.0 else 0.0,  # without momentum torch keeps no buffer
            1.0 if self.nesterov else 0.0,
            self.momentum,
            lr,
        )
