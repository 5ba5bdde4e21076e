"""LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning"), as optax.lamb."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import NamedTuple, cast

import numpy as np

from fastoptim.kernels import lamb as kernels
from fastoptim.kernels import new_record, norm
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_betas
from fastoptim.optim.optimizer import CACHED_VIEWS, Carried, Optimizer
from fastoptim.optim.step_records import Piece


class LambScalars(NamedTuple):
    """The per-step scalars of LAMB's two passes."""

    sign: float  # -grad_scale with maximize, else grad_scale
    beta1: float
    omb1: float  # 1 - beta1
    beta2: float
    omb2: float  # 1 - beta2
    inv_bias_correction1: float  # 1 / (1 - beta1**t)
    inv_bias_correction2_sqrt: float  # 1 / sqrt(1 - beta2**t)
    eps: float
    weight_decay: float
    lr: float


def lamb_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> LambScalars:
    """Scalars of step ``t`` in float64: both bias corrections as factors, ``grad_scale``
    (clipping, unscaling) folded with maximize's sign."""
    beta1, beta2 = settings.betas
    return new_record(
        LambScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            beta1,
            1.0 - beta1,
            beta2,
            1.0 - beta2,
            1.0 / (1.0 - beta1**t),
            1.0 / math.sqrt(1.0 - beta2**t),
            settings.eps,
            weight_decay,
            lr,
        ),
    )


LAMB_DECLARATION = Declaration(
    name="LAMB",
    hyperparameters=(
        shared.learning_rate(1e-3),
        HyperParameter(
            "betas",
            (0.9, 0.999),
            check_betas,
            "``(beta1, beta2)``: the decay of the first and second moments, each in [0, 1).",
        ),
        shared.epsilon(1e-6),
        shared.nonnegative(
            "weight_decay",
            "Decoupled decay :math:`\\lambda` >= 0, added to the direction before the "
            "trust ratio is taken (optax's ``add_decayed_weights``).",
        ),
        shared.MAXIMIZE,
    ),
    states=lambda s: ("exp_avg", "exp_avg_sq"),
    kernel=None,  # two passes: the trust ratio needs each layer's norms first
    scalars=lamb_scalars,
)


class TrustPlan(NamedTuple):
    """A run of layers' scratch for its trust ratios, among the layers that have blocks:
    each block's layer, each layer's first block (and the end), the blocks' sums and each
    layer's rate ``lr * ratio`` in the parameters' dtype."""

    block_layers: np.ndarray
    firsts: np.ndarray
    p_partials: np.ndarray
    u_partials: np.ndarray
    layer_rates: np.ndarray


class LAMB(Optimizer):
    r"""LAMB: Adam's direction scaled per layer by a trust ratio, as ``optax.lamb``.

    For each layer :math:`\theta` with gradient :math:`g_t` at step :math:`t`:

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        u_t &= \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
            + \lambda \theta_{t-1} \\
        r_t &= \|\theta_{t-1}\| / \|u_t\| \quad (1 \text{ if either norm is } 0) \\
        \theta_t &= \theta_{t-1} - \eta\, r_t\, u_t

    ====================  =====================================================
    :math:`m, v`          ``state['exp_avg']``, ``state['exp_avg_sq']``, zero at start
    :math:`\eta`          ``lr``
    :math:`\lambda`       ``weight_decay``
    :math:`\|\cdot\|`     the 2-norm over the whole layer (one array of ``params``)
    ====================  =====================================================

    Every layer moves by :math:`\eta \|\theta\|` (its own scale), whatever its gradients'.
    The norms of a layer are needed before any of it moves, so a step makes two passes:
    the moments with both norms' sums (reads p, g, m, v; writes m, v), then the update
    (reads p, m, v; writes p): 40 bytes per float32 element against Adam's 28. The sums
    are taken in float64 in fixed blocks: the same bits for any thread count. No
    ``state_dtype``: the state is kept in the parameters' dtype.

    {parameters}

    References
    ----------
    Y. You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
    minutes", ICLR 2020 (optax.lamb).

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.LAMB({"w": np.array([3.0, 4.0])}, lr=0.1)
    >>> opt.step({"w": np.array([1.0, -1.0])})   # u = (1, -1), ratio 5 / sqrt(2)
    >>> np.round(opt.params["w"], 6)
    array([2.646447, 4.353553])
    """

    declaration = LAMB_DECLARATION
    cached_views = (*CACHED_VIEWS, "_trust_plans")

    def apply(
        self,
        pieces: Sequence[Piece],
        t: int,
        rates: Sequence[float],
        grad_scale: float,
        carried: Carried | None = None,
    ) -> None:
        """The update of checked ``pieces`` as step ``t``: each run of layers in two
        passes, at its group's learning rate and decay."""
        table = self.scalar_table(t, rates, grad_scale)
        for piece in pieces:
            self._update(piece.names, piece.param, piece.grad, piece.states, piece.norm_bounds,
                         cast(LambScalars, table[piece.group]))  # fmt: skip
            self.move_ema_of(piece.names, piece.param)
        self.ema_steps += 1

    def update_layer(
        self,
        name: str,
        grad: np.ndarray,
        t: int,
        grad_scale: float = 1.0,
        carried: Carried | None = None,
    ) -> None:
        """One layer alone as step ``t`` of that layer (see ``Optimizer.update_layer``)."""
        view = self._layer_segments[name]
        scalars = cast(
            LambScalars, self.scalar_table(t, self.learning_rates(t), grad_scale)[view.group]
        )
        self._update(view.names, view.flat_param, grad, view.kernel_states, view.norm_bounds,
                     scalars)  # fmt: skip
        self.move_ema_of(view.names, view.flat_param)

    @cached_property
    def _trust_plans(self) -> dict[tuple[str, ...], TrustPlan]:
        """Each run of layers' TrustPlan, made on its first step."""
        return {}

    def _plan(self, names: tuple[str, ...], bounds: np.ndarray) -> TrustPlan:
        plan = self._trust_plans.get(names)
        if plan is None:
            blocks = [norm.blocks(self.layout.sizes[self.layout.index(name)]) for name in names]
            per_layer = np.array([b for b in blocks if b], dtype=np.int64)
            n_blocks = bounds.size - 1
            plan = TrustPlan(
                np.repeat(np.arange(per_layer.size), per_layer),
                np.concatenate(([0], np.cumsum(per_layer))).astype(np.int64),
                np.empty(n_blocks),
                np.empty(n_blocks),
                np.empty(per_layer.size, self.layout.dtype),
            )
            self._trust_plans[names] = plan
        return plan

    def _update(
        self,
        names: tuple[str, ...],
        param: np.ndarray,
        grad: np.ndarray,
        states: tuple[np.ndarray, ...],
        bounds: np.ndarray,
        s: LambScalars,
    ) -> None:
        """Layers ``names`` (``param`` their 1-D run): the moments and norms, each layer's
        trust ratio, then the update. Nothing is allocated: the scratch is the plan's."""
        if bounds.size < 2:
            return  # only empty layers
        plan = self._plan(names, bounds)
        value = param.dtype.type
        exp_avg, exp_avg_sq = states
        direction = tuple(
            value(x) for x in (s.inv_bias_correction1, s.inv_bias_correction2_sqrt, s.eps,
                               s.weight_decay)
        )  # fmt: skip
        kernels.lamb_moments.variant_for(param)(
            param, grad, exp_avg, exp_avg_sq, value(s.sign), value(s.beta1), value(s.omb1),
            value(s.beta2), value(s.omb2), *direction, bounds, plan.p_partials, plan.u_partials,
        )  # fmt: skip
        kernels.trust_rates.variant(param.dtype, parallel=False)(
            plan.p_partials, plan.u_partials, plan.firsts, s.lr, plan.layer_rates
        )
        kernels.lamb_step.variant_for(param)(
            param, exp_avg, exp_avg_sq, *direction, bounds, plan.block_layers, plan.layer_rates
        )
