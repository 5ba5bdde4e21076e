"""Adam (Kingma & Ba, 2015, Algorithm 1)."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.hyperparameters import check_betas, check_epsilon, check_learning_rate
from fastoptim.optim.optimizer import Optimizer


def adam_scalars(t: int, lr: float, beta1: float, beta2: float, eps: float) -> tuple[float, ...]:
    """Kernel scalars for step ``t``, computed in float64 from ``t`` directly.

    ``step_size = lr / (1 - beta1**t)`` and ``1 / sqrt(1 - beta2**t)`` fold both bias
    corrections into two scalars, so the kernel computes
    ``lr * m_hat / (sqrt(v_hat) + eps)`` as ``step_size * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.
    """
    bias_correction1 = 1.0 - beta1**t
    bias_correction2 = 1.0 - beta2**t
    return (
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

    kernel = kernels.adam
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
    ) -> None:
        self._set_hyperparameters(lr=lr, betas=betas, eps=eps)
        super().__init__(params, nonfinite, max_consecutive_skips)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps}

    def _set_hyperparameters(self, lr: float, betas: tuple[float, float], eps: float) -> None:
        checked = check_learning_rate(lr, "lr"), check_betas(betas, "betas"), check_epsilon(eps)
        self.lr, self.betas, self.eps = checked

    def _scalars(self, t: int) -> tuple[float, ...]:
        beta1, beta2 = self.betas
        return adam_scalars(t, self.lr, beta1, beta2, self.eps)
