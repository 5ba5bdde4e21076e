"""Adam (Kingma & Ba, 2015, Algorithm 1) and AdamW, with torch.optim's arguments."""

from __future__ import annotations

import math
from dataclasses import replace

from fastoptim import kernels
from fastoptim.kernels import AdamScalars, new_record
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_betas, check_flag
from fastoptim.optim.optimizer import Optimizer


def adam_scalars(
    settings: Settings,
    t: int,
    lr: float,
    weight_decay: float,
    grad_scale: float,
    decoupled: bool = False,
) -> AdamScalars:
    """Kernel scalars for step ``t``, computed in float64 from ``t`` directly.

    ``step_size = lr / (1 - beta1**t)`` and ``1 / sqrt(1 - beta2**t)`` fold both bias
    corrections into two scalars, so the kernel computes
    ``lr * m_hat / (sqrt(v_hat) + eps)`` as ``step_size * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.
    Weight decay goes into the gradient (Adam, L2) or scales the parameter by
    ``1 - lr * weight_decay`` first (AdamW, ``decoupled``). ``grad_scale`` (clipping)
    multiplies the gradient, folded with maximize's sign into one scalar. ``m_bound``
    (int8 state) is ``moment_ratio_bound`` plus a margin of ``BOUND_SLACK``.
    """
    beta1, beta2 = settings.betas
    int8 = getattr(settings, "state_dtype", None) == "int8"
    return new_record(
        AdamScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            0.0 if decoupled else weight_decay,
            1.0 - lr * weight_decay if decoupled else 1.0,
            beta1,
            1.0 - beta1,
            beta2,
            1.0 - beta2,
            lr / (1.0 - beta1**t),
            1.0 / math.sqrt(1.0 - beta2**t),
            settings.eps,
            BOUND_SLACK * moment_ratio_bound(beta1, beta2, t) if int8 else math.inf,
        ),
    )


# the clamp's margin over the exact bound: moments in float32 reach the bound itself (at t = 1
# always), and their rounding must not be clamped
BOUND_SLACK = 1.001


def moment_ratio_bound(beta1: float, beta2: float, t: int) -> float:
    r"""The largest :math:`|m_t| / \sqrt{v_t}` that Adam's exact moments can reach at step
    :math:`t`, from zero and for any gradients.

    With :math:`m_t = (1-\beta_1)\sum_{j<t} \beta_1^j g_{t-j}` and
    :math:`v_t = (1-\beta_2)\sum_{j<t} \beta_2^j g_{t-j}^2`, Cauchy-Schwarz gives

    .. math::

        |m_t| \le (1-\beta_1) \sqrt{S_t} \sqrt{v_t / (1-\beta_2)},
        \qquad S_t = \sum_{j<t} (\beta_1^2/\beta_2)^j,

    so the step :math:`\eta \hat m_t / (\sqrt{\hat v_t} + \epsilon)` is at most
    :math:`\eta R_t` with :math:`R_t = (1-\beta_1)\sqrt{S_t (1-\beta_2^t)} /
    ((1-\beta_1^t)\sqrt{1-\beta_2})` (1 at :math:`t = 1`; about 7.3 for the default
    betas). int8 state clamps :math:`|m|` to this bound times :math:`\sqrt{v}`. With
    :math:`\beta_2 = 0` (:math:`v_t = g_t^2`, nothing stored matters) there is no bound: inf.
    """
    if beta2 == 0.0:
        return math.inf
    ratio = beta1 * beta1 / beta2
    try:
        total = float(t) if ratio == 1.0 else (1.0 - ratio**t) / (1.0 - ratio)
    except OverflowError:  # beta1**2 > beta2: the bound grows without limit
        return math.inf
    return (1.0 - beta1) * math.sqrt(total / (1.0 - beta2))


def _adamw_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> AdamScalars:
    return adam_scalars(settings, t, lr, weight_decay, grad_scale, decoupled=True)


ADAM = Declaration(
    name="Adam",
    hyperparameters=(
        shared.learning_rate(1e-3),
        HyperParameter(
            "betas", (0.9, 0.999), check_betas, "Decay rates of the two moments, each in [0, 1)."
        ),
        shared.epsilon(1e-8),
        shared.nonnegative(
            "weight_decay",
            "L2 penalty >= 0 added to the gradient (Adam), or the decoupled decay of the "
            "parameter, :math:`\\theta \\leftarrow (1 - \\eta \\lambda) \\theta` (AdamW).",
        ),
        HyperParameter(
            "amsgrad",
            False,
            check_flag,
            "Divide by the largest second moment seen so far (Reddi et al., 2018); keeps "
            "``state['max_exp_avg_sq']``.",
            decides_state=True,
        ),
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if s.amsgrad else ()),
    kernel=lambda s: kernels.adam_amsgrad_update if s.amsgrad else kernels.adam_update,
    scalars=adam_scalars,
)
# AdamW is Adam with decoupled weight decay, whose default is 0.01
ADAMW = replace(ADAM.with_defaults("AdamW", weight_decay=1e-2), scalars=_adamw_scalars)


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

    {parameters}

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

    declaration = ADAM


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Each step first scales every parameter by :math:`1 - \eta \lambda` (``lr`` times
    ``weight_decay``, default 0.01), then applies Adam with the plain gradient:

    .. math::

        \theta_{t-1} &\leftarrow (1 - \eta \lambda)\, \theta_{t-1} \\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    {parameters}

    References
    ----------
    I. Loshchilov and F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    declaration = ADAMW
