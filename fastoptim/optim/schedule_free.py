"""Schedule-Free AdamW (Defazio et al., 2024, "The Road Less Scheduled"), as the
schedulefree package's ``AdamWScheduleFree``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fastoptim.kernels import new_record
from fastoptim.kernels.interpolation import interpolate
from fastoptim.kernels.schedule_free import ScheduleFreeScalars, schedule_free_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.adam_variants import BETAS
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_count, check_nonnegative
from fastoptim.optim.optimizer import Carried, GradsLike, Optimizer
from fastoptim.optim.step_records import Piece


def warmed_up_lr(settings: Settings, t: int, lr: float) -> float:
    """The learning rate of step ``t``: ``lr t / warmup_steps`` while ``t <=
    warmup_steps``, then ``lr`` (the package's only schedule)."""
    if t - 1 < settings.warmup_steps:
        return lr * (t / settings.warmup_steps)
    return lr


class WeightAverage(NamedTuple):
    """What one param group carries from step to step: the largest warmed-up learning rate
    so far (-1 before the first step) and the sum of the averaging weights."""

    lr_max: float = -1.0
    weight_sum: float = 0.0

    def advanced(self, settings: Settings, t: int, lr: float) -> tuple[WeightAverage, float]:
        r"""After step ``t`` at learning rate ``lr``: the new record and ``c_t``, the weight
        of the new ``z`` in the average ``x``.

        :math:`w_t = t^r \max_{s \le t}(\eta_s)^{p}`, :math:`c_t = w_t / \sum_{s \le t} w_s`
        (0 while the sum is 0), with :math:`p` = ``weight_lr_power``.
        """
        lr_max = max(warmed_up_lr(settings, t, lr), self.lr_max)
        weight = (t**settings.r) * (lr_max**settings.weight_lr_power)
        weight_sum = self.weight_sum + weight
        ckp1 = weight / weight_sum if weight_sum != 0.0 else 0.0
        return WeightAverage(lr_max, weight_sum), ckp1


def schedule_free_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float, ckp1: float
) -> ScheduleFreeScalars:
    """Kernel scalars of step ``t`` whose new ``z`` weighs ``ckp1`` in the average (from
    ``WeightAverage.advanced``): the warmed-up rate, ``1 - beta2**t`` and ``y``'s step
    ``lr (beta1 (1 - ckp1) - 1)``, in float64 as the package computes them."""
    beta1, beta2 = settings.betas
    lr = warmed_up_lr(settings, t, lr)
    return new_record(
        ScheduleFreeScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            beta2,
            1.0 - beta2,
            1.0 - beta2**t,
            settings.eps,
            weight_decay,
            ckp1,
            1.0 - ckp1,
            lr * (beta1 * (1.0 - ckp1) - 1.0),
            lr,
        ),
    )


ADAMW_SCHEDULE_FREE = Declaration(
    name="AdamWScheduleFree",
    hyperparameters=(
        shared.learning_rate(0.0025),
        BETAS,
        shared.epsilon(1e-8),
        shared.nonnegative(
            "weight_decay",
            "Weight decay :math:`\\lambda` >= 0, taken at :math:`y` and added to the "
            "normalized gradient.",
        ),
        HyperParameter(
            "warmup_steps",
            0,
            check_count,
            "Steps of linear warmup of the learning rate (a whole number >= 0).",
        ),
        HyperParameter(
            "r",
            0.0,
            check_nonnegative,
            "Power of the polynomial weighting :math:`t^r` of the average, >= 0.",
        ),
        HyperParameter(
            "weight_lr_power",
            2.0,
            check_nonnegative,
            "Power of the largest learning rate so far in the averaging weights, >= 0 "
            "(0: the warmup does not weigh less).",
        ),
        shared.MAXIMIZE,
    ),
    states=lambda s: ("z", "exp_avg_sq"),
    kernel=lambda s: schedule_free_update,
    scalars=schedule_free_scalars,  # type: ignore[arg-type]  # takes ckp1, carried
)


class AdamWScheduleFree(Optimizer):
    r"""Schedule-Free AdamW, as ``schedulefree.AdamWScheduleFree``: no learning-rate
    schedule is needed; the weights to evaluate are an average the step keeps for free.

    Three sequences: :math:`z` (the base steps), :math:`x` (their weighted average, the
    weights to evaluate) and :math:`y` (where the gradient is taken). In training mode the
    parameters hold :math:`y`; ``eval()`` moves them to :math:`x` in place and ``train()``
    back. For each element, with gradient :math:`g_t` at :math:`y_{t-1}`, step
    :math:`t = 1, 2, \dots` and the warmed-up rate :math:`\eta_t`:

    .. math::

        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2, \qquad
        u_t = \frac{g_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} + \lambda y_{t-1} \\
        z_t &= z_{t-1} - \eta_t u_t, \qquad x_t = (1 - c_t)\, x_{t-1} + c_t z_t \\
        y_t &= (1 - \beta_1)\, z_t + \beta_1 x_t

    computed, as the package does, without :math:`x`:
    :math:`y_t = \mathrm{lerp}(y_{t-1}, z_{t-1}, c_t) + \eta_t (\beta_1 (1 - c_t) - 1) u_t`,
    with :math:`c_t` as in :meth:`WeightAverage.advanced`. :math:`z_0 = y_0` = the
    parameters at the first step; ``state['z']`` and ``state['exp_avg_sq']`` are the
    package's state.

    The optimizer starts in training mode (the package starts in eval mode and needs
    ``train()`` first: here that call is accepted and changes nothing). ``step`` in eval
    mode raises. Save the parameters in eval mode (they are then :math:`x`); ``state_dict``
    keeps the mode and each group's weight sums under ``'running'``.

    {parameters}

    References
    ----------
    A. Defazio et al., "The Road Less Scheduled", NeurIPS 2024 (facebookresearch/
    schedule_free, ``adamw_schedulefree.py``).

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.AdamWScheduleFree({"w": np.ones(2)}, lr=0.1)
    >>> opt.step({"w": np.full(2, 0.5)})   # step 1: c_1 = 1, so y = z = x = 1 - lr u, u ~ 1
    >>> opt.step({"w": np.full(2, 0.5)})   # step 2: c_2 = 1/2, x halfway to the new z
    >>> opt.params["w"].round(4)           # y = 0.1 z + 0.9 x, z = 0.8
    array([0.845, 0.845])
    >>> opt.eval()                          # the parameters now hold x
    >>> opt.params["w"].round(4)
    array([0.85, 0.85])
    """

    declaration = ADAMW_SCHEDULE_FREE

    def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        # z = y at the start (and again at the first step, should the parameters change)
        self.state["z"].buffer[:] = self.params.buffer
        self.train_mode = True
        self.averages = [WeightAverage()] * len(self.groups)

    # -- the two sequences ----------------------------------------------------------------
    def eval(self) -> None:
        """Move the parameters from :math:`y` to :math:`x` in place (one pass:
        ``p = lerp(p, z, 1 - 1/beta1)``), for evaluation or saving; a no-op in eval mode."""
        if self.train_mode:
            self._move(1.0 - 1.0 / self.settings.betas[0])
            self.train_mode = False

    def train(self) -> None:
        """Move the parameters from :math:`x` back to :math:`y` in place
        (``p = lerp(p, z, 1 - beta1)``); a no-op in training mode."""
        if not self.train_mode:
            self._move(1.0 - self.settings.betas[0])
            self.train_mode = True

    def _move(self, weight: float) -> None:
        if self.t == 0:  # x = y = z until the first step
            return
        for run in self._flat_runs:
            interpolate.variant_for(run.param)(run.param, run.states[0], weight, 1.0 - weight)

    def check_train_mode(self) -> None:
        """Raise unless in training mode, as the package does (before anything changes)."""
        if not self.train_mode:
            raise RuntimeError(
                "AdamWScheduleFree is in eval mode: its parameters hold the average x, not "
                "the point y a step starts from; call opt.train() before stepping (and "
                "opt.eval() before evaluating or saving)"
            )

    # -- the step -------------------------------------------------------------------------
    def step(self, grads: GradsLike, *, grad_scale: float = 1.0) -> None:
        self.check_train_mode()
        super().step(grads, grad_scale=grad_scale)

    step.__doc__ = Optimizer.step.__doc__

    def apply(
        self,
        pieces: Sequence[Piece],
        t: int,
        rates: Sequence[float],
        grad_scale: float,
        carried: Carried | None = None,
    ) -> None:
        """The update of step ``t`` (see ``Optimizer.apply``). Without ``carried`` each
        group's weight sums advance here and give its ``ckp1``; a caller that keeps them
        itself (fastoptim.torch: in the param groups) passes ``ckp1`` as ``carried``."""
        self.check_train_mode()
        if t == 1:  # z starts as the parameters at the first step, as the package's
            self.state["z"].buffer[:] = self.params.buffer
        advanced = self._advanced(t, rates) if carried is None else None
        super().apply(pieces, t, rates, grad_scale, carried or _ckp1s(advanced))
        if advanced is not None:
            self.averages = [average for average, _ in advanced]

    def update_layer(
        self,
        name: str,
        grad: np.ndarray,
        t: int,
        grad_scale: float = 1.0,
        carried: Carried | None = None,
    ) -> None:
        """One layer alone as step ``t`` of that layer (see ``Optimizer.update_layer``):
        its caller keeps the step counts, so it keeps the weight sums too and passes
        ``carried={'ckp1': c}``, the weight of step ``t`` in the average (fastoptim.torch
        keeps them in its param groups)."""
        if not carried:
            raise TypeError(
                "AdamWScheduleFree.update_layer needs carried={'ckp1': c}: the weight of "
                "step t in the average, which the caller keeps with its step counts "
                "(see WeightAverage.advanced); opt.step keeps them itself"
            )
        super().update_layer(name, grad, t, grad_scale, carried)

    def scalar_table(
        self,
        t: int,
        rates: Sequence[float],
        grad_scale: float = 1.0,
        carried: Carried | None = None,
    ) -> list[tuple]:
        """As ``Optimizer.scalar_table``; without ``carried``, each group's ``ckp1`` is
        the one step ``t`` would take from its weight sums now (nothing changes)."""
        if carried is None:
            carried = _ckp1s(self._advanced(t, rates))
        return super().scalar_table(t, rates, grad_scale, carried)

    def _advanced(self, t: int, rates: Sequence[float]) -> list[tuple[WeightAverage, float]]:
        return [
            average.advanced(self.settings, t, lr)
            for average, lr in zip(self.averages, rates, strict=True)
        ]

    # -- saving and restoring -------------------------------------------------------------
    def running_state(self) -> dict[str, Any]:
        """The mode and each group's ``[lr_max, weight_sum]`` (default group first)."""
        return {
            "train_mode": self.train_mode,
            "averages": [[a.lr_max, a.weight_sum] for a in self.averages],
        }

    def checked_running_state(self, saved: object) -> tuple[bool, list[WeightAverage]]:
        expected = (
            f"{{'train_mode': bool, 'averages': {len(self.groups)} pairs [lr_max, weight_sum]}}"
        )
        if not isinstance(saved, Mapping) or sorted(saved) != ["averages", "train_mode"]:
            raise KeyError(
                f"state_dict['running'] must be {expected}, one pair per group; got {saved!r}"
            )
        train_mode, pairs = saved["train_mode"], saved["averages"]
        if not isinstance(train_mode, bool):
            raise ValueError(f"state_dict['running']['train_mode'] is {train_mode!r}, not a bool")
        if not (
            isinstance(pairs, Sequence)
            and len(pairs) == len(self.groups)
            and all(
                isinstance(pair, Sequence)
                and len(pair) == 2
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in pair)
                for pair in pairs
            )
        ):
            raise ValueError(
                f"state_dict['running']['averages'] must be {len(self.groups)} pairs of finite "
                f"numbers [lr_max, weight_sum], one per group; got {pairs!r}"
            )
        return train_mode, [WeightAverage(float(a), float(b)) for a, b in pairs]

    def restore_running_state(self, checked: tuple[bool, list[WeightAverage]]) -> None:
        self.train_mode, self.averages = checked


def _ckp1s(advanced: Sequence[tuple[WeightAverage, float]] | None) -> list[dict[str, float]]:
    """Each group's ``ckp1`` as the scalar function takes it (carried)."""
    return [{"ckp1": ckp1} for _, ckp1 in advanced or ()]
