"""Schedule-Free AdamW as the schedulefree package's ``AdamWScheduleFree``: a
torch.optim.Optimizer with its arguments, its param-group keys (``k``, ``train_mode``,
``weight_sum``, ``lr_max``, ``scheduled_lr``, ``foreach``) and its state (``z``,
``exp_avg_sq``), so that either's state_dict loads into the other."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import torch

import fastoptim
from fastoptim.kernels.interpolation import interpolate
from fastoptim.optim.schedule_free import WeightAverage, warmed_up_lr
from fastoptim.torch.buckets import Bucket
from fastoptim.torch.declared import torch_class_for
from fastoptim.torch.optimizer import group_options

# the package's message, then what to do
EVAL_MODE_MESSAGE = (
    "Optimizer was not in train mode when step is called. Please insert .train() and "
    ".eval() calls on the optimizer. See documentation for details."
)

_Base: Any = torch_class_for(
    fastoptim.AdamWScheduleFree, "The base of fastoptim.torch.AdamWScheduleFree."
)


class AdamWScheduleFree(_Base):
    """Schedule-Free AdamW (torch.optim has none) as a ``torch.optim.Optimizer`` on flat
    buffers, a drop-in for ``schedulefree.AdamWScheduleFree``: its arguments (``foreach``
    accepted, the step is fused), group keys and state, and its modes. It starts in eval
    mode, as the package: call ``optimizer.train()`` before training (``step`` raises in
    eval mode) and ``optimizer.eval()`` before evaluating or saving the model; each moves
    the parameters in place between ``y`` and the average ``x``, one pass over the
    buffers. :class:`fastoptim.AdamWScheduleFree` computes the update."""

    has_step_state = False  # the package counts steps per group: group['k']
    group_running_defaults = MappingProxyType(
        {"k": 0, "train_mode": False, "weight_sum": 0.0, "lr_max": -1.0, "scheduled_lr": 0.0}
    )

    def __init__(self, params: Any, *args: Any, foreach: bool | None = True, **kwargs: Any):
        super().__init__(params, *args, **kwargs)
        self.defaults["foreach"] = foreach
        for group in self.param_groups:
            group.setdefault("foreach", foreach)
        self._ckp1: dict[int, float] = {}  # each group's ckp1 in the step being taken

    # -- the two sequences ----------------------------------------------------------------
    @torch.no_grad()
    def eval(self) -> None:
        """The parameters of every group in train mode move to ``x``
        (``p.lerp_(z, 1 - 1/beta1)``), as the package's ``eval``."""
        self._switch(to_train=False, weight=lambda beta1: 1.0 - 1.0 / beta1)

    @torch.no_grad()
    def train(self) -> None:
        """The parameters of every group in eval mode move back to ``y``
        (``p.lerp_(z, 1 - beta1)``), as the package's ``train``."""
        self._switch(to_train=True, weight=lambda beta1: 1.0 - beta1)

    def _switch(self, to_train: bool, weight: Callable[[float], float]) -> None:
        self._take_outside_state()
        for bucket in self._buckets:
            group = self.param_groups[bucket.group_index]
            if group["train_mode"] != to_train:
                _move(bucket, weight(float(group["betas"][0])))
        for group in self.param_groups:
            group["train_mode"] = to_train

    # -- the step -------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError(EVAL_MODE_MESSAGE)
        return super().step(closure)

    step.__doc__ = _Base.step.__doc__

    def _step_begins(self) -> None:
        """Each group's weight sums advance (as the package, whether or not its parameters
        have gradients); every parameter counts the group's steps, and one stepping for the
        first time starts its ``z`` at its value."""
        self._ckp1 = {}
        buckets: dict[int, list[Bucket]] = {}
        for bucket in self._buckets:
            buckets.setdefault(bucket.group_index, []).append(bucket)
        for index, group in enumerate(self.param_groups):
            options = group_options(group, fastoptim.AdamWScheduleFree)
            lr = options.pop("lr")
            settings = fastoptim.AdamWScheduleFree.declaration.settings(**options)
            t = group["k"] + 1
            average, self._ckp1[index] = WeightAverage(
                float(group["lr_max"]), float(group["weight_sum"])
            ).advanced(settings, t, lr)
            for bucket in buckets.get(index, []):
                bucket.steps[:] = t - 1
                bucket.recount_uniform()
                _start_z(bucket)
            group.update(
                k=t,
                lr_max=average.lr_max,
                weight_sum=average.weight_sum,
                scheduled_lr=warmed_up_lr(settings, t, lr),
            )

    def _carried_values(self, bucket: Bucket, where: slice, t: int) -> dict[str, float]:
        return {"ckp1": self._ckp1[bucket.group_index]}


def _start_z(bucket: Bucket) -> None:
    """``z`` of each parameter that steps now for the first time (no state yet) starts at
    the parameter's value (the package clones it then)."""
    z = bucket.core.state["z"]
    for index, param in enumerate(bucket.params):
        if param.grad is not None and bucket.exposed_states[index] is None:
            name = bucket.names[index]
            z[name][...] = bucket.core.params[name]


def _move(bucket: Bucket, weight: float) -> None:
    """``p = lerp(p, z, weight)`` in place for each parameter of ``bucket`` that has state:
    one kernel call over the bucket when all have."""
    core = bucket.core
    z = core.state["z"]
    if all(state is not None for state in bucket.exposed_states):
        arrays = [(core.params.buffer, z.buffer)]
    else:
        arrays = [
            (core.params[name].reshape(-1), z[name].reshape(-1))
            for name, state in zip(bucket.names, bucket.exposed_states, strict=True)
            if state is not None
        ]
    for param, base in arrays:
        interpolate.variant_for(param)(param, base, weight, 1.0 - weight)
