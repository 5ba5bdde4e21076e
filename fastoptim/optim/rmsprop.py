"""RMSprop (Hinton; Graves 2013 for the centered form), exactly as torch.optim.RMSprop."""

from __future__ import annotations

from fastoptim import kernels
from fastoptim.kernels import RMSpropScalars, new_record
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_beta, check_flag
from fastoptim.optim.optimizer import Optimizer


def rmsprop_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> RMSpropScalars:
    """Kernel scalars: the options as 1.0/0.0 flags decided in Python (a tiny momentum may
    round to 0 in float32, but torch keeps a buffer for any momentum != 0)."""
    return new_record(
        RMSpropScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            weight_decay,
            settings.alpha,
            1.0 - settings.alpha,
            settings.eps,
            1.0 if settings.centered else 0.0,
            1.0 if settings.momentum != 0.0 else 0.0,
            settings.momentum,
            lr,
        ),
    )


def _check_alpha(value: object, name: str) -> float:
    return check_beta(value, name, "alpha value")


def _check_combination(settings: Settings) -> None:
    if settings.centered and settings.state_dtype == "int8":
        raise ValueError(
            "RMSprop: centered=True does not work with state_dtype='int8': the variance "
            "square_avg - grad_avg**2 of two 8-bit averages can come out negative or zero "
            "(NaN or unbounded steps); use centered=False with int8, or state_dtype "
            "'float32' or 'bfloat16' with centered=True"
        )


RMSPROP = Declaration(
    name="RMSprop",
    hyperparameters=(
        shared.learning_rate(1e-2),
        HyperParameter(
            "alpha", 0.99, _check_alpha, "Smoothing constant :math:`\\alpha` in [0, 1)."
        ),
        shared.epsilon(1e-8),
        shared.L2_WEIGHT_DECAY,
        shared.nonnegative(
            "momentum",
            "Momentum :math:`\\mu` >= 0; on or off decides whether "
            "``state['momentum_buffer']`` exists.",
            decides_state=True,
        ),
        HyperParameter(
            "centered",
            False,
            check_flag,
            "Normalise by an estimate of the gradient's variance; keeps ``state['grad_avg']``.",
            decides_state=True,
        ),
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    # the kernel always takes (square_avg, grad_avg, momentum_buffer)
    states=lambda s: (
        "square_avg",
        "grad_avg" if s.centered else None,
        "momentum_buffer" if s.momentum != 0.0 else None,
    ),
    kernel=lambda s: kernels.rmsprop_update,
    scalars=rmsprop_scalars,
    check=_check_combination,
)


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

    {parameters}

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.RMSprop({"w": np.ones(2)}, lr=0.01, alpha=0.75)
    >>> opt.step({"w": np.full(2, 3.0)})   # 1 - 0.01 * 3 / sqrt(0.25 * 9)
    >>> opt.params["w"]
    array([0.98, 0.98])
    """

    declaration = RMSPROP
