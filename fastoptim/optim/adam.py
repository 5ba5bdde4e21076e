"""Adam (Kingma & Ba, 2015, Algorithm 1) and AdamW, with torch.optim's arguments."""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, ClassVar

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.groups import Group
from fastoptim.optim.hyperparameters import (
    check_betas,
    check_epsilon,
    check_flag,
    check_lr_or_schedule,
    check_max_norm,
    check_nonnegative,
)
from fastoptim.optim.optimizer import Optimizer


def adam_scalars(
    t: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    maximize: bool = False,
    grad_scale: float = 1.0,
) -> tuple[float, ...]:
    """Kernel scalars for step ``t``, computed in float64 from ``t`` directly.

    ``step_size = lr / (1 - beta1**t)`` and ``1 / sqrt(1 - beta2**t)`` fold both bias
    corrections into two scalars, so the kernel computes
    ``lr * m_hat / (sqrt(v_hat) + eps)`` as ``step_size * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.
    Weight decay goes into the gradient (Adam, L2) or scales the parameter by
    ``1 - lr * weight_decay`` first (AdamW, ``decoupled``). ``grad_scale`` (clipping)
    multiplies the gradient, folded with maximize's sign into one scalar.
    """
    bias_correction1 = 1.0 - beta1**t
    bias_correction2 = 1.0 - beta2**t
    return (
        -grad_scale if maximize else grad_scale,
        0.0 if decoupled else weight_decay,
        1.0 - lr * weight_decay if decoupled else 1.0,
        beta1,
        1.0 - beta1,
        beta2,
        1.0 - beta2,
        lr / bias_correction1,
        1.0 / math.sqrt(bias_correction2),
        eps,
    )


class Adam(Optimizer):
    r"""Adam with bias-corrected first and second moments.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t) \\
        \hat v_t &= v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    ==================================  ====================================================
    :math:`\theta`                      parameters (``params``)
    :math:`m`, :math:`v`                ``state['exp_avg']``, ``state['exp_avg_sq']``, zero at start
    :math:`\eta`                        ``lr``
    :math:`\beta_1`, :math:`\beta_2`    ``betas``
    :math:`\epsilon`                    ``eps``
    ==================================  ====================================================

    The denominator uses the bias-corrected :math:`\hat v_t`. (A widely copied version of
    the course function divides by :math:`\sqrt{v_t}` instead; that is a bug.)

    Parameters
    ----------
    params : FlatParams or dict of arrays
        A dict is flattened into one buffer and its entries are rebound to the live views.
    lr : float
        Learning rate, finite and >= 0.
    betas : (float, float)
        Decay rates of the two moments, each in [0, 1).
    eps : float
        Added to the denominator, finite and > 0.
    weight_decay : float
        L2 penalty added to the gradient, :math:`g_t + \lambda \theta_{t-1}` (default 0).
    amsgrad : bool
        Divide by the largest :math:`\hat v` seen so far (Reddi et al., 2018); keeps
        ``state['max_exp_avg_sq']``.
    maximize : bool
        Ascend instead of descend (the gradient's sign is flipped).
    max_grad_norm : float or None
        Clip by global norm as ``torch.nn.utils.clip_grad_norm_(params, max_grad_norm)``
        does before each step: the gradients are scaled by
        ``min(1, max_grad_norm / (norm + 1e-6))``; ``opt.last_grad_norm`` keeps the norm.
    groups : list of Group, optional
        Layers with their own ``lr`` or ``weight_decay``, or frozen; see :class:`fastoptim.Group`.
    nonfinite, max_consecutive_skips
        What a step does with NaN or Inf in the gradients: ``'skip'`` (default), ``'raise'``
        or ``'ignore'``; see :class:`fastoptim.optim.nonfinite.NonFiniteGuard`.

    References
    ----------
    D. P. Kingma and J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> params = fastoptim.flatten({"W1": np.ones((2, 2))})
    >>> grads = params.zeros_like(prefix="d")
    >>> grads["dW1"][...] = 0.5
    >>> opt = fastoptim.Adam(params, lr=0.1)
    >>> opt.step(grads)     # the first step moves every weight by about lr
    >>> params["W1"]
    array([[0.9, 0.9],
           [0.9, 0.9]])
    """

    decoupled: ClassVar[bool] = False  # AdamW: decay the parameter, not the gradient

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        groups: Sequence[Group | Mapping[str, Any]] | None = None,
    ) -> None:
        self.amsgrad = check_flag(amsgrad, "amsgrad")
        self._set_hyperparameters(lr, betas, eps, weight_decay, amsgrad, maximize, max_grad_norm)
        # AMSGrad keeps the largest second moment seen: one more buffer, its own kernel
        self.kernel = kernels.adam_amsgrad if self.amsgrad else kernels.adam
        self.state_names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())
        super().__init__(params, nonfinite, max_consecutive_skips, groups)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self._lr_setting(),
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
            "maximize": self.maximize,
            "max_grad_norm": self.max_grad_norm,
        }

    def _set_hyperparameters(
        self,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
        amsgrad: bool,
        maximize: bool,
        max_grad_norm: float | None = None,
    ) -> None:
        checked = (
            check_lr_or_schedule(lr, getattr(self, "t", 0) + 1),
            check_betas(betas, "betas"),
            check_epsilon(eps),
            check_nonnegative(weight_decay, "weight_decay"),
            check_flag(maximize, "maximize"),
        )
        max_norm = check_max_norm(max_grad_norm)
        if check_flag(amsgrad, "amsgrad") != self.amsgrad:
            raise ValueError(
                f"amsgrad={amsgrad} does not match this optimizer (amsgrad={self.amsgrad}): "
                "it decides which state buffers exist; construct the optimizer with it"
            )
        self.lr, self.betas, self.eps, self.weight_decay, self.maximize = checked
        self.max_grad_norm = max_norm

    def _scalars(self, t: int, lr: float, weight_decay: float) -> tuple[float, ...]:
        beta1, beta2 = self.betas
        return adam_scalars(
            t,
            lr,
            beta1,
            beta2,
            self.eps,
            weight_decay,
            self.decoupled,
            self.maximize,
            self._grad_scale,
        )


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Each step first scales every parameter by :math:`1 - \eta \lambda` (``lr`` times
    ``weight_decay``, default 0.01), then applies Adam with the plain gradient:

    .. math::

        \theta_{t-1} &\leftarrow (1 - \eta \lambda)\, \theta_{t-1} \\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    Arguments as :class:`Adam`.

    References
    ----------
    I. Loshchilov and F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    decoupled = True

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        groups: Sequence[Group | Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad,
            maximize=maximize, max_grad_norm=max_grad_norm, nonfinite=nonfinite,
            max_consecutive_skips=max_consecutive_skips, groups=groups,
        )  # fmt: skip
