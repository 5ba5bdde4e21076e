"""The implementations the bench runs side by side, each behind one small interface:
``setup(problem)`` builds its own copy of the model, ``step()`` runs one update."""

from __future__ import annotations

import importlib.util
import inspect
import os
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

import fastoptim
from fastoptim import kernels, reference
from fastoptim.bench.algorithms import LR
from fastoptim.bench.problems import TORCH_MODELS, Problem
from fastoptim.compat.course_update import CourseUpdate

Arrays = dict[str, np.ndarray]


class Contender:
    name = ""

    def available(self, problem: Problem) -> str | None:
        """None if this can run ``problem``, else a one-line reason."""
        return None

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        """Build this contender's own copy of the model (the inputs are shared: copy them)."""
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Drop everything, buffers first (contenders are made anew for every problem)."""
        self.__dict__.clear()


class FastoptimFlat(Contender):
    """The object API on the flat buffer, without the NaN/Inf check: the same work as the
    peers, none of which checks gradients."""

    name = "fastoptim"
    nonfinite = "ignore"

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        self.params = fastoptim.flatten(parameters)
        self.grads = self.params.zeros_like(prefix="d")
        for key, value in grads.items():
            self.grads[key] = value
        self.optimizer = problem.spec.make(
            self.params, nonfinite=self.nonfinite, **self.options(problem)
        )

    def options(self, problem: Problem) -> dict[str, Any]:
        return problem.options()

    def step(self) -> None:
        self.optimizer.step(self.grads)


class FastoptimFullPrecision(FastoptimFlat):
    """The same optimizer with its state in the parameters' dtype, beside a row of
    low-precision state: what storing fewer bits gains."""

    name = "fastoptim float32 state"

    def available(self, problem: Problem) -> str | None:
        return None if problem.low_precision else "runs beside low-precision state only"

    def options(self, problem: Problem) -> dict[str, Any]:
        return {}


class FastoptimGuarded(FastoptimFlat):
    """The object API as constructed by default: every step first checks the gradients
    for NaN/Inf (one more read of them)."""

    name = "fastoptim checked"
    nonfinite = "skip"


class KernelAlone(FastoptimFlat):
    """fastoptim's compiled kernel called directly on the same buffers with scalars made
    once: what ``fastoptim`` costs without its Python (checks, scalars, dispatch)."""

    name = "fastoptim kernel alone"

    def available(self, problem: Problem) -> str | None:
        if not problem.spec.elementwise:
            return f"{problem.algorithm}'s step is several passes, not one elementwise kernel"
        return None

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        super().setup(problem, parameters, grads)
        optimizer = self.optimizer
        scalars = optimizer.scalar_table(1, optimizer.learning_rates(1))[0]  # no groups
        # one piece, or two with int8 state (its small layers keep float32 state)
        pieces = optimizer.plan(self.grads)
        self.calls = [direct_call(piece.loop, piece.arrays, scalars) for piece in pieces]  # type: ignore[arg-type]

    def step(self) -> None:
        for call in self.calls:
            call()


class CourseDicts(Contender):
    name = "fastoptim course dicts"
    module: ModuleType = fastoptim

    def available(self, problem: Problem) -> str | None:
        if problem.low_precision:
            return "the course functions keep their state in the parameters' dtype"
        return None if problem.spec.course else "only Adam and Momentum have course functions"

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        params = {k: v.copy() for k, v in parameters.items()}
        self.course = CourseUpdate(self.module, problem.algorithm, params, LR)
        self.grads = grads  # read only by every update

    def step(self) -> None:
        self.course.step(self.grads)


class Reference(CourseDicts):
    name = "numpy reference"
    module = reference


class Roof(Contender):
    name = "roof"

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        if problem.spec.roof is not None:  # a step of several passes: the same passes
            self.call = problem.spec.roof([shape for _, shape in problem.shapes], problem.dtype)
            return
        n_state = problem.spec.n_state
        params = fastoptim.flatten(parameters)
        grad = params.zeros_like().buffer
        if problem.low_precision:  # 16- or 8-bit state: its traffic, as integer additions
            itemsize = problem.state_itemsize
            self.kernel = kernels.roof.STORED_FOR_STATES[n_state, itemsize]
            code = np.uint16 if itemsize == 2 else np.uint8
            states = [np.zeros(params.layout.size, code) for _ in range(n_state)]
        else:
            self.kernel = kernels.roof.FOR_STATES[n_state]
            states = [params.zeros_like().buffer for _ in range(n_state)]
        self.call = direct_call(self.kernel, (params.buffer, grad, *states), ())

    def step(self) -> None:
        self.call()


class Torch(Contender):
    """torch.optim Adam or SGD(momentum) in one of its three implementations."""

    def __init__(self, implementation: str) -> None:
        self.implementation = implementation  # "for-loop", "foreach", "fused"
        self.name = f"torch {implementation}"

    def available(self, problem: Problem) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'fastoptim[torch]')"
        import torch

        optimizer_class = getattr(torch.optim, problem.spec.torch_class, None)
        if optimizer_class is None:
            return f"torch.optim has no {problem.spec.torch_class}"
        options = inspect.signature(optimizer_class).parameters
        if self.implementation != "for-loop" and self.implementation not in options:
            return f"torch.optim.{problem.spec.torch_class} has no {self.implementation} form"
        return None

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        import torch

        self.params = torch_parameters(problem, parameters, grads)
        flags: dict[str, Any] = {
            "for-loop": {"foreach": False},
            "foreach": {"foreach": True},
            "fused": {"fused": True},
        }[self.implementation]
        optimizer_class = getattr(torch.optim, problem.spec.torch_class)
        self.optimizer = optimizer_class(self.params, lr=LR, **problem.spec.torch_options, **flags)

    def step(self) -> None:
        self.optimizer.step()


class FastoptimTorch(Contender):
    """fastoptim.torch's optimizer of the same name on the same torch parameters as the
    torch.optim rows, without the NaN/Inf check (the peers do none)."""

    name = "fastoptim.torch"
    nonfinite = "ignore"
    options: ClassVar[dict[str, Any]] = {}  # torch options beyond the algorithm's

    def available(self, problem: Problem) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'fastoptim[torch]')"
        return None

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        import fastoptim.torch

        self.params = torch_parameters(problem, parameters, grads)
        optimizer_class = getattr(fastoptim.torch, problem.spec.torch_class)
        self.optimizer = optimizer_class(
            self.params,
            lr=LR,
            **problem.spec.torch_options,
            **self.options,
            nonfinite=self.nonfinite,
        )
        if hasattr(self.optimizer, "train"):  # Schedule-Free AdamW starts in eval mode
            self.optimizer.train()

    def step(self) -> None:
        self.optimizer.step()


class LionPytorch(Contender):
    """lion-pytorch's Lion (google/automl's update, per-tensor torch ops) on the same torch
    parameters: the package Lion users run today."""

    name = "lion-pytorch"

    def available(self, problem: Problem) -> str | None:
        if problem.algorithm != "lion":
            return "lion-pytorch implements Lion only"
        if importlib.util.find_spec("lion_pytorch") is None:
            return "lion-pytorch is not installed (pip install --no-deps lion-pytorch)"
        return None

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        from lion_pytorch import Lion

        self.params = torch_parameters(problem, parameters, grads)
        self.optimizer = Lion(self.params, lr=LR, **problem.spec.torch_options)

    def step(self) -> None:
        self.optimizer.step()


class ScheduleFreePackage(Contender):
    """The schedulefree package's AdamWScheduleFree (per-tensor torch ops, foreach or a
    for-loop) on the same torch parameters, in train mode: what its users run today."""

    def __init__(self, implementation: str) -> None:
        self.foreach = implementation == "foreach"
        self.name = f"schedulefree {implementation}"

    def available(self, problem: Problem) -> str | None:
        if problem.algorithm != "schedule-free":
            return "schedulefree's AdamWScheduleFree implements Schedule-Free AdamW only"
        if importlib.util.find_spec("schedulefree") is None:
            return "schedulefree is not installed (pip install --no-deps schedulefree)"
        return None

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        from schedulefree import AdamWScheduleFree

        self.params = torch_parameters(problem, parameters, grads)
        self.optimizer = AdamWScheduleFree(
            self.params, lr=LR, foreach=self.foreach, **problem.spec.torch_options
        )
        self.optimizer.train()

    def step(self) -> None:
        self.optimizer.step()


class FastoptimTorchChecked(FastoptimTorch):
    """fastoptim.torch as constructed by default: the gradients are checked first."""

    name = "fastoptim.torch checked"
    nonfinite = "skip"


class WithGradScaler(Contender):
    """A fused torch-form optimizer stepped through ``torch.amp.GradScaler`` as mixed-
    precision training does: ``scaler.step`` (which checks the gradients for inf, then
    hands the scale to the fused step to unscale) and ``scaler.update``."""

    def __init__(self, inner: Torch | FastoptimTorch) -> None:
        self.inner = inner
        self.name = f"{inner.name} + GradScaler"

    def available(self, problem: Problem) -> str | None:
        if problem.spec.torch_class not in ("Adam", "AdamW", "SGD", "Adagrad"):
            return "only torch's fused classes (Adam, AdamW, SGD, Adagrad) take the scale"
        return self.inner.available(problem)

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        import torch

        self.inner.setup(problem, parameters, grads)
        self.scaler = torch.amp.GradScaler("cpu")
        self.scaler.scale(torch.ones(()))  # the scale exists from the first scaled loss on

    def step(self) -> None:
        self.scaler.step(self.inner.optimizer)
        self.scaler.update()

    def teardown(self) -> None:
        self.inner.teardown()
        super().teardown()


class FastoptimTorchFused(FastoptimTorch):
    """fastoptim.torch constructed with ``fused=True``: GradScaler then leaves the
    unscaling to its step (one more factor in the kernel)."""

    options: ClassVar[dict[str, Any]] = {"fused": True}


class DeepSpeed(Contender):
    name = "DeepSpeedCPUAdam"

    def available(self, problem: Problem) -> str | None:
        if problem.spec.deepspeed_options is None:
            return "DeepSpeedCPUAdam does Adam and AdamW only"
        if problem.dtype != np.float32:
            return "DeepSpeedCPUAdam supports float32 parameters only"
        if importlib.util.find_spec("deepspeed") is None:
            return "deepspeed is not installed (pip install deepspeed ninja)"
        return None

    def setup(self, problem: Problem, parameters: Arrays, grads: Arrays) -> None:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        self.params = torch_parameters(problem, parameters, grads)
        options = problem.spec.deepspeed_options or {}  # available() refused None
        self.optimizer = DeepSpeedCPUAdam(self.params, lr=LR, **options)

    def step(self) -> None:
        self.optimizer.step()


def direct_call(kernel: kernels.UpdateLoop, segment: tuple, values: tuple):
    """A no-argument function that calls the compiled variant ``kernel.run`` would pick."""
    compiled = kernel.variant_for(segment[0])
    arguments = (*segment, *values)
    return lambda: compiled(*arguments)


def torch_parameters(problem: Problem, parameters: Arrays, grads: Arrays) -> list:
    """The parameters of a real ``nn.Module`` for the torch models (a stack of Linear
    layers), else one torch Parameter per layer; gradients set, ``problem.threads`` threads."""
    import torch

    torch.set_num_threads(problem.threads)
    if problem.model in TORCH_MODELS:
        layers, width = TORCH_MODELS[problem.model]
        with torch.device("meta"):  # shapes only: the values come from ``parameters``
            module = torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers)))
        module = module.to_empty(device="cpu").to(getattr(torch, problem.dtype.name))
        params = list(module.parameters())
        for param, value in zip(params, parameters.values(), strict=True):
            with torch.no_grad():
                param.copy_(torch.from_numpy(value))
    else:
        params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in parameters.values()]
    for param, grad in zip(params, grads.values(), strict=True):
        param.grad = torch.from_numpy(grad.copy())
    return params


def all_contenders() -> list[Contender]:
    return [
        FastoptimFlat(),
        FastoptimFullPrecision(),
        FastoptimGuarded(),
        KernelAlone(),
        CourseDicts(),
        Reference(),
        Roof(),
        Torch("for-loop"),
        Torch("foreach"),
        Torch("fused"),
        FastoptimTorch(),
        LionPytorch(),
        ScheduleFreePackage("foreach"),
        ScheduleFreePackage("for-loop"),
        FastoptimTorchChecked(),
        WithGradScaler(Torch("fused")),
        WithGradScaler(FastoptimTorchFused()),
        DeepSpeed(),
    ]
