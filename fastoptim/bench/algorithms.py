"""The algorithms the bench and the asv suite measure, each with its peers' equivalent.

Every entry uses the same hyper-parameters on every side: fastoptim's class, the
torch.optim class and options that compute the same update (the course Momentum has no
torch twin; torch's SGD with momentum 0.9 moves the same bytes and stands in), the course
drop-in where there is one, and DeepSpeedCPUAdam where it implements the algorithm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

import fastoptim
from fastoptim.kernels import passes_roof

LR = 1e-3


@dataclass(frozen=True)
class BenchAlgorithm:
    name: str
    make: Callable[..., fastoptim.Optimizer]  # make(params, nonfinite=...)
    torch_class: str  # the torch.optim class with ``torch_options``
    torch_options: dict[str, Any] = field(default_factory=dict)
    course: bool = False  # has a course drop-in (course dicts, numpy reference)
    deepspeed_options: dict[str, Any] | None = None  # DeepSpeedCPUAdam(**options), if any
    # for a step of several passes (not one elementwise kernel): the elements it moves per
    # element of a layer of a shape, and a roof step with the same passes over those shapes
    traffic: Callable[[tuple[int, ...]], int] | None = None
    roof: Callable[[Sequence[tuple[int, ...]], np.dtype], Callable[[], None]] | None = None

    @cached_property
    def n_state(self) -> int:
        """State buffers: a step reads 2 + n_state arrays and writes 1 + n_state. Read
        from the algorithm's declaration, for the settings ``make`` uses."""
        probe = self.make({"w": np.zeros(1)})
        return len(probe.declaration.state_names(probe.settings))

    @cached_property
    def elementwise(self) -> bool:
        """Whether the step is one elementwise kernel (the kernel-alone row times it)."""
        return self.make({"w": np.zeros(1)}).declaration.kernel is not None


ALGORITHMS = {
    a.name: a
    for a in (
        BenchAlgorithm(
            "adam",
            lambda p, **kw: fastoptim.Adam(p, lr=LR, **kw),
            "Adam",
            course=True,
            deepspeed_options={"adamw_mode": False},
        ),
        BenchAlgorithm(
            "momentum",
            lambda p, **kw: fastoptim.Momentum(p, lr=LR, beta=0.9, **kw),
            "SGD",
            {"momentum": 0.9},
            course=True,
        ),
        BenchAlgorithm(
            "adamw",
            lambda p, **kw: fastoptim.AdamW(p, lr=LR, weight_decay=1e-2, **kw),
            "AdamW",
            {"weight_decay": 1e-2},
            deepspeed_options={"adamw_mode": True, "weight_decay": 1e-2},
        ),
        BenchAlgorithm(
            "amsgrad",
            lambda p, **kw: fastoptim.Adam(p, lr=LR, amsgrad=True, **kw),
            "Adam",
            {"amsgrad": True},
        ),
        BenchAlgorithm(
            "sgd",
            lambda p, **kw: fastoptim.SGD(p, lr=LR, momentum=0.9, nesterov=True, **kw),
            "SGD",
            {"momentum": 0.9, "nesterov": True},
        ),
        BenchAlgorithm("adagrad", lambda p, **kw: fastoptim.Adagrad(p, lr=LR, **kw), "Adagrad"),
        BenchAlgorithm("rmsprop", lambda p, **kw: fastoptim.RMSprop(p, lr=LR, **kw), "RMSprop"),
        BenchAlgorithm("nadam", lambda p, **kw: fastoptim.NAdam(p, lr=LR, **kw), "NAdam"),
        BenchAlgorithm("radam", lambda p, **kw: fastoptim.RAdam(p, lr=LR, **kw), "RAdam"),
        BenchAlgorithm("adamax", lambda p, **kw: fastoptim.Adamax(p, lr=LR, **kw), "Adamax"),
        BenchAlgorithm("adadelta", lambda p, **kw: fastoptim.Adadelta(p, lr=LR, **kw), "Adadelta"),
        BenchAlgorithm("rprop", lambda p, **kw: fastoptim.Rprop(p, lr=LR, **kw), "Rprop"),
        BenchAlgorithm("asgd", lambda p, **kw: fastoptim.ASGD(p, lr=LR, **kw), "ASGD"),
        BenchAlgorithm(
            "adafactor",
            lambda p, **kw: fastoptim.Adafactor(p, lr=LR, **kw),
            "Adafactor",
            traffic=passes_roof.traffic,
            roof=passes_roof.adafactor_roof,
        ),
        # torch.optim has no LAMB: its peer is fastoptim.torch.LAMB
        BenchAlgorithm(
            "lamb",
            lambda p, **kw: fastoptim.LAMB(p, lr=LR, weight_decay=1e-2, **kw),
            "LAMB",
            {"weight_decay": 1e-2},
            traffic=passes_roof.lamb_traffic,
            roof=passes_roof.lamb_roof,
        ),
        # torch.optim has no Schedule-Free AdamW: its peers are fastoptim.torch's and the
        # schedulefree package's (foreach and for-loop)
        BenchAlgorithm(
            "schedule-free",
            lambda p, **kw: fastoptim.AdamWScheduleFree(p, lr=LR, weight_decay=1e-2, **kw),
            "AdamWScheduleFree",
            {"weight_decay": 1e-2},
        ),
        # torch.optim has no Lion: its peers are fastoptim.torch.Lion and lion-pytorch
        BenchAlgorithm(
            "lion",
            lambda p, **kw: fastoptim.Lion(p, lr=LR, weight_decay=0.1, **kw),
            "Lion",
            {"weight_decay": 0.1},
        ),
    )
}
