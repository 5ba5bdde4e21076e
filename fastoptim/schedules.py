"""Learning-rate schedules: functions of the step number ``t`` (1 for the first step).

Pass one as an optimizer's ``lr`` (``Adam(params, lr=WarmupCosine(1e-3, 10_000, 500))``):
each step then uses ``lr(t)``, checked before anything changes. Any callable of ``t`` works;
the classes here are also saved in ``state_dict()`` and checkpoints and restored from them.
With the course functions, pass ``learning_rate=schedule(t)``. The rate is a scalar argument
of the kernels, so changing it never recompiles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Schedule:
    """Base of the describable schedules: ``schedule(t)`` is the rate of step ``t``."""

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The schedule as plain data: ``{"schedule": name, **arguments}``."""
        return {"schedule": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr`` at every step."""

    lr: float

    def __call__(self, t: int) -> float:
        return self.lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``lr * gamma ** ((t - 1) // step_size)``: torch's StepLR, stepped once per step."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** ((t - 1) // self.step_size)


@dataclass(frozen=True)
class Exponential(Schedule):
    """``lr * gamma ** (t - 1)``: torch's ExponentialLR, stepped once per step."""

    lr: float
    gamma: float

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t - 1)


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    r"""Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at
    ``total_steps`` (and ``min_lr`` after):

    .. math::

        \eta_t = \begin{cases}
            \eta\, t / w & t \le w \\
            \eta_{min} + \tfrac12 (\eta - \eta_{min})
                \left(1 + \cos \pi \min\!\left(1, \tfrac{t - w}{T - w}\right)\right) & t > w
        \end{cases}
    """

    lr: float
    total_steps: int
    warmup_steps: int = 0
    min_lr: float = 0.0

    def __call__(self, t: int) -> float:
        if t <= self.warmup_steps:
            return self.lr * t / self.warmup_steps
        progress = min(1.0, (t - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


SCHEDULES = {cls.__name__: cls for cls in (Constant, StepDecay, Exponential, WarmupCosine)}


def from_description(description: dict[str, Any]) -> Schedule:
    """The schedule that ``schedule.describe()`` described."""
    arguments = dict(description)
    name = arguments.pop("schedule", None)
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; known: {sorted(SCHEDULES)}")
    return SCHEDULES[name](**arguments)
