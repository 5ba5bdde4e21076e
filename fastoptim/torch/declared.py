"""torch.optim.Optimizer subclasses for fastoptim algorithms that torch.optim lacks (Lion,
LAMB): torch's conventions (param groups holding every hyper-parameter, ``defaults``,
schedulers, state_dict), the arguments from the algorithm's declaration."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from fastoptim.optim import Optimizer
from fastoptim.torch.optimizer import FlatOptimizer


class DeclaredTorchOptimizer(torch.optim.Optimizer):
    """A torch.optim.Optimizer whose ``__init__(params, <hyper-parameters>)`` puts the
    declared hyper-parameters (torch's names, fastoptim's defaults) into ``defaults``;
    subclasses set ``core_class``. fastoptim's checks run when the buffers are made."""

    core_class: Any  # a callable of a param group, as FlatOptimizer's
    # what each param group holds besides the hyper-parameters, at its start (the values a
    # class keeps in its groups from step to step: Schedule-Free AdamW's weight sums)
    group_running_defaults: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
        arguments = type(self).__signature__.bind(params, *args, **kwargs)  # type: ignore[attr-defined]
        arguments.apply_defaults()
        defaults = {k: v for k, v in arguments.arguments.items() if k != "params"}
        super().__init__(params, {**defaults, **self.group_running_defaults})

    def __setstate__(self, state: dict[str, Any]) -> None:
        # as torch's own classes do for options added later: a state dict saved without a
        # hyper-parameter (lion-pytorch's has no maximize) gets its default
        super().__setstate__(state)
        for group in self.param_groups:
            for hp in self.core_class(group).declaration.hyperparameters:
                group.setdefault(hp.torch_key, hp.default)


def torch_class_for(core_class: type[Optimizer], doc: str, has_step_state: bool = False) -> type:
    """The fastoptim.torch class of an algorithm torch.optim does not have: a
    torch.optim.Optimizer subclass whose step is ``core_class``'s kernel. Its state per
    parameter holds the declared state buffers, and ``step`` where the update depends on
    it (``has_step_state``: bias corrections)."""
    declaration = core_class.declaration
    kind = inspect.Parameter
    arguments = [kind("params", kind.POSITIONAL_OR_KEYWORD)] + [
        kind(
            hp.torch_key,
            kind.KEYWORD_ONLY if hp.keyword_only else kind.POSITIONAL_OR_KEYWORD,
            default=hp.default,
        )
        for hp in declaration.hyperparameters
    ]
    return type(
        declaration.name,
        (FlatOptimizer, DeclaredTorchOptimizer),
        {
            "__doc__": doc,
            "__module__": "fastoptim.torch",
            "__signature__": inspect.Signature(arguments),
            "core_class": staticmethod(lambda group: core_class),
            "has_step_state": has_step_state,
        },
    )
