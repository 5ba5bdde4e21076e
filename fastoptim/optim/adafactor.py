"""Adafactor (Shazeer & Stern, 2018), as torch.optim.Adafactor: a factored second moment,
a relative step size and the update's RMS clipped, layer by layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any, NamedTuple, cast

import numpy as np

from fastoptim.flat import FlatParams, Layout
from fastoptim.kernels import adafactor as kernels
from fastoptim.kernels import new_record, norm
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import _real, check_nonnegative
from fastoptim.optim.optimizer import CACHED_VIEWS, Carried, Optimizer
from fastoptim.optim.step_records import Piece

FACTORS = ("row_var", "col_var", "variance")  # torch's names of the state


class AdafactorScalars(NamedTuple):
    """The per-step scalars of a layer's passes."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight: float  # beta2's complement t**beta2_decay: how far the averages move
    relative_step: float  # rho_t = min(lr, 1/sqrt(t))
    decay: float  # 1 - lr * weight_decay
    eps1: float | None  # None: the parameters' dtype's machine epsilon
    eps2: float
    d: float


def adafactor_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> AdafactorScalars:
    """Scalars of step ``t``: ``t**beta2_decay``, ``min(lr, 1/sqrt(t))`` and the decay."""
    eps1, eps2 = settings.eps
    return new_record(
        AdafactorScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            t**settings.beta2_decay,
            min(lr, 1.0 / math.sqrt(t)),
            1.0 - lr * weight_decay,
            eps1,
            eps2,
            settings.d,
        ),
    )


def check_beta2_decay(value: Any, name: str) -> float:
    """torch's rule: a finite number <= 0."""
    if not (_real(value) and -math.inf < value <= 0.0):
        raise ValueError(f"{name} should be <= 0 but is: {value!r}")
    return float(value)


def check_eps_pair(value: Any, name: str) -> tuple[float | None, float]:
    """``(eps1, eps2)``: eps1 None or a finite number >= 0, eps2 a finite number >= 0."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"Invalid {name}: {value!r} (expected (eps1, eps2), e.g. (None, 1e-3))")
    eps1, eps2 = value
    if eps1 is not None and not (_real(eps1) and 0.0 <= eps1 < math.inf):
        raise ValueError(f"epsilon1 should be >= 0 but is: {eps1!r} ({name}[0]: None or >= 0)")
    if not (_real(eps2) and 0.0 <= eps2 < math.inf):
        raise ValueError(f"epsilon2 should be >= 0 but is: {eps2!r} ({name}[1] >= 0)")
    return (None if eps1 is None else float(eps1), float(eps2))


def check_clipping_threshold(value: Any, name: str) -> float:
    """torch's rule: a finite number >= 1."""
    if not (_real(value) and 1.0 <= value < math.inf):
        raise ValueError(f"Clipping threshold {name} should be >= 1 but is: {value!r}")
    return float(value)


ADAFACTOR = Declaration(
    name="Adafactor",
    hyperparameters=(
        shared.learning_rate(1e-2),
        HyperParameter(
            "beta2_decay",
            -0.8,
            check_beta2_decay,
            "The second moment's averaging weight at step :math:`t` is :math:`t^{c}`, "
            "this :math:`c` <= 0.",
        ),
        HyperParameter(
            "eps",
            (None, 1e-3),
            check_eps_pair,
            "``(eps1, eps2)``: the smallest second moment (squared; None: the parameters' "
            "dtype's machine epsilon) and the smallest parameter RMS the step is relative to.",
        ),
        HyperParameter(
            "d", 1.0, check_clipping_threshold, "Clipping threshold >= 1 of the update's RMS."
        ),
        HyperParameter(
            "weight_decay",
            0.0,
            check_nonnegative,
            "Decoupled weight decay :math:`\\lambda` >= 0: :math:`\\theta \\leftarrow (1 - "
            "\\eta\\lambda)\\theta` before the step.",
        ),
        shared.MAXIMIZE,
    ),
    states=lambda s: (),  # its state is factored, not laid out like the parameters: see below
    kernel=None,
    scalars=adafactor_scalars,
)


def factor_shapes(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The shape of each state of a layer of ``shape``, as torch's (``(0,)`` where the
    layer keeps none): ``row_var`` and ``col_var`` for two or more dimensions (a mean over
    the last dimension, and over the one before), ``variance`` for fewer."""
    if len(shape) >= 2:
        return {
            "row_var": (*shape[:-1], 1),
            "col_var": (*shape[:-2], 1, shape[-1]),
            "variance": (0,),
        }
    return {"row_var": (0,), "col_var": (0,), "variance": shape}


class Adafactor(Optimizer):
    r"""Adafactor in ``torch.optim.Adafactor``'s form.

    For each layer :math:`\theta` of :math:`n` elements, with gradient :math:`g_t` at step
    :math:`t`, :math:`\hat\beta_t = t^{c}` (``beta2_decay`` :math:`c`),
    :math:`\rho_t = \min(\eta, 1/\sqrt{t})` and
    :math:`\alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\, \rho_t`:

    .. math::

        R_t &= R_{t-1} + \hat\beta_t (\operatorname{mean}_{cols} g_t^2 - R_{t-1}), \quad
        C_t = C_{t-1} + \hat\beta_t (\operatorname{mean}_{rows} g_t^2 - C_{t-1}) \\
        V_t &= R_t C_t / \max(\operatorname{mean}(R_t), \epsilon_1)
            \quad\text{(1-D: } V_t = V_{t-1} + \hat\beta_t (g_t^2 - V_{t-1})\text{)} \\
        u_t &= g_t / \sqrt{\max(V_t, \epsilon_1^2)} \\
        \theta_t &= (1 - \eta\lambda)\,\theta_{t-1}
            - \frac{\alpha_t}{\max(1, \mathrm{RMS}(u_t) / d)}\, u_t

    A layer of two or more dimensions keeps a row and a column factor of its last two
    (``state_values('row_var')``, ``'col_var'``: as many numbers as rows plus columns), a
    smaller one a full ``'variance'``; a state's entry is empty for a layer that does not
    keep it. Each step makes three passes over a factored layer (reads p and g; reads g;
    reads p and g, writes p) and two over a full one. No ``state_dtype``: the factored
    state is already small.

    {parameters}

    References
    ----------
    N. Shazeer and M. Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
    Cost", ICML 2018.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.Adafactor({"W": np.ones((2, 3))}, lr=0.1)
    >>> opt.step({"W": np.full((2, 3), 0.5)})   # every element by rho * RMS(p) = 0.1
    >>> opt.params["W"]
    array([[0.9, 0.9, 0.9],
           [0.9, 0.9, 0.9]])
    >>> opt.state_values("row_var")["W"].shape
    (2, 1)
    """

    declaration = ADAFACTOR
    cached_views = (*CACHED_VIEWS, "_layer_plans")

    def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        self.state_names = FACTORS
        self.state = {key: FlatParams(self.state_layout(key, self.layout)) for key in FACTORS}

    def layer_state_keys(self, name: str) -> tuple[str, ...]:
        """``('row_var', 'col_var')`` for a layer of two or more dimensions, else
        ``('variance',)``, as torch keeps them."""
        factored = len(self.layout.shapes[self.layout.index(name)]) >= 2
        return FACTORS[:2] if factored else FACTORS[2:]

    def state_layout(self, key: str, layout: Layout) -> Layout:
        """State ``key``'s layout for parameters laid out as ``layout``: each layer's entry
        of ``factor_shapes``."""
        shapes = [factor_shapes(shape)[key] for shape in layout.shapes]
        return Layout(layout.names, shapes, layout.dtype)

    # -- the step -----------------------------------------------------------------------------
    def apply(
        self,
        pieces: Sequence[Piece],
        t: int,
        rates: Sequence[float],
        grad_scale: float,
        carried: Carried | None = None,
    ) -> None:
        """The update of checked ``pieces`` as step ``t``: each layer by itself (its sums
        first, then its step), at its group's learning rate and decay."""
        table = self.scalar_table(t, rates, grad_scale)
        for piece in pieces:
            first = self.layout.span(piece.names[0]).start
            for name in piece.names:
                span = self.layout.span(name)
                where = slice(span.start - first, span.stop - first)
                scalars = cast(AdafactorScalars, table[piece.group])
                self._update(name, piece.param[where], piece.grad[where], scalars)
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
        group = next(i for i, group in enumerate(self.groups) if name in group.names)
        scalars = cast(
            AdafactorScalars, self.scalar_table(t, self.learning_rates(t), grad_scale)[group]
        )
        span = self.layout.span(name)
        self._update(name, self.params.buffer[span], grad, scalars)
        self.move_ema_of((name,), self.params.buffer[span])

    @cached_property
    def _layer_plans(self) -> dict[str, FactoredLayer | FullLayer]:
        """Each non-empty layer's views of the state and scratch for its sums, made once
        (the buffers never move)."""
        plans: dict[str, FactoredLayer | FullLayer] = {}
        for name, shape in zip(self.layout.names, self.layout.shapes, strict=True):
            size = math.prod(shape)
            if size == 0:
                continue
            if len(shape) < 2:
                bounds = norm.block_bounds([size])
                blocks = bounds.size - 1
                variance = self.state["variance"].buffer[self._span(name, "variance")]
                plans[name] = FullLayer(variance, bounds, np.empty(blocks), np.empty(blocks))
                continue
            rows, cols = shape[-2], shape[-1]
            matrices = size // (rows * cols)
            bounds = kernels.row_bounds(matrices, rows, cols)
            units = bounds.size - 1
            plans[name] = FactoredLayer(
                rows,
                cols,
                matrices,
                bounds,
                np.searchsorted(bounds[:-1], np.arange(matrices) * rows),
                self.state["row_var"].buffer[self._span(name, "row_var")],
                self.state["col_var"].buffer[self._span(name, "col_var")],
                np.empty(matrices * rows),
                np.empty(matrices * rows, self.layout.dtype),
                np.empty(matrices * rows, self.layout.dtype),
                np.empty(matrices * cols),
                np.empty(matrices * cols, self.layout.dtype),
                np.empty(units * cols),
                np.empty(units),
                np.empty(units),
            )
        return plans

    def _span(self, name: str, key: str) -> slice:
        """Layer ``name``'s range in state ``key``'s buffer."""
        return self.state[key].layout.span(name)

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray, s: AdafactorScalars) -> None:
        """Layer ``name``'s step: its sums, then its update."""
        plan = self._layer_plans.get(name)
        if plan is None:
            return  # an empty layer
        dtype = param.dtype
        value = dtype.type
        eps1 = float(np.finfo(dtype).eps) if s.eps1 is None else s.eps1
        if isinstance(plan, FactoredLayer):
            p_squares, u_squares, unclamped = _factored_sums(plan, param, grad, s, eps1)
        else:
            kernels.vector_sums.variant_for(param)(
                param, grad, plan.variance, value(s.sign), value(s.weight), eps1 * eps1,
                plan.bounds, plan.p_partials, plan.u_partials,
            )  # fmt: skip
            p_squares = norm.reduce_block_sums(plan.p_partials)
            u_squares = norm.reduce_block_sums(plan.u_partials)
        n = param.size
        alpha = max(s.eps2, math.sqrt(p_squares) / math.sqrt(n)) * s.relative_step
        step = alpha / max(1.0, math.sqrt(u_squares) / (math.sqrt(n) * s.d))
        decay, sign = value(s.decay), value(s.sign)
        if isinstance(plan, FullLayer):
            kernels.vector_step.variant_for(param)(
                param, grad, plan.variance, sign, decay, value(step), value(eps1 * eps1)
            )
            return
        if unclamped:
            kernels.scaled_step.variant_for(param)(
                param, grad, decay, step * s.sign, plan.cols, plan.rows, plan.bounds,
                plan.row_factors, plan.col_roots, plan.row_coefficients,
            )  # fmt: skip
        else:
            kernels.factored_step.variant_for(param)(
                param, grad, sign, decay, value(step), plan.cols, plan.rows, plan.bounds,
                plan.row_factors, plan.col_var, value(eps1 * eps1),
            )  # fmt: skip


class FactoredLayer(NamedTuple):
    """A layer of two or more dimensions: ``matrices`` of ``rows x cols``, its units, the
    first unit of each matrix, its factors' views and the scratch of its sums."""

    rows: int
    cols: int
    matrices: int
    bounds: np.ndarray
    firsts: np.ndarray
    row_var: np.ndarray
    col_var: np.ndarray
    row_sums: np.ndarray
    row_factors: np.ndarray  # R / max(mean(R), eps1), in the parameters' dtype
    row_coefficients: np.ndarray  # step / sqrt(row factor), in the parameters' dtype
    col_weights: np.ndarray  # 1 / C in float64
    col_roots: np.ndarray  # 1 / sqrt(C), in the parameters' dtype
    col_partials: np.ndarray
    p_partials: np.ndarray
    u_partials: np.ndarray


class FullLayer(NamedTuple):
    """A layer of fewer than two dimensions: its variance's view, blocks and sums' scratch."""

    variance: np.ndarray
    bounds: np.ndarray
    p_partials: np.ndarray
    u_partials: np.ndarray


def _factored_sums(
    plan: FactoredLayer, param: np.ndarray, grad: np.ndarray, s: AdafactorScalars, eps1: float
) -> tuple[float, float, bool]:
    """Passes 1 and 2 of a factored layer: the new factors (written into the state) and
    row factors ``R / max(mean(R), eps1)`` (into the plan), the sums of ``p**2`` and
    ``u**2``, and whether the clamp binds nowhere."""
    kernels.factored_sums.variant_for(param)(
        param, grad, s.sign, plan.cols, plan.bounds, plan.row_sums, plan.col_partials,
        plan.p_partials,
    )  # fmt: skip
    least = kernels.update_factors.variant(param.dtype, parallel=False)(
        plan.row_sums, plan.col_partials, plan.firsts, plan.rows, plan.cols, s.weight, eps1,
        plan.row_var, plan.col_var, plan.row_factors, plan.col_weights, plan.col_roots,
    )  # fmt: skip
    # the clamp max(row_factor col_var, eps1**2) binds nowhere (every factor > 0 and their
    # least product above eps1**2, with room for rounding): then u's two roots are a row's
    # and a column's, taken once each, not one per element
    unclamped = bool(least > 2.0 * eps1 * eps1)
    arguments = (grad, s.sign, plan.cols, plan.rows, plan.bounds, plan.row_factors)
    if unclamped:
        kernels.scaled_update_squares.variant_for(param)(
            *arguments, plan.col_weights, plan.u_partials
        )
    else:
        kernels.factored_update_squares.variant_for(param)(
            *arguments, plan.col_var, eps1 * eps1, plan.u_partials
        )
    p_squares = norm.reduce_block_sums(plan.p_partials)
    u_squares = norm.reduce_block_sums(plan.u_partials)
    return p_squares, u_squares, unclamped
