"""fastoptim for PyTorch: drop-in torch.optim optimizers whose step is one fastoptim kernel.

Change one line of a torch training loop::

    optimizer = fastoptim.torch.Adam(model.parameters(), lr=1e-3)   # was torch.optim.Adam

Each class derives from the torch.optim class of the same name, so it is constructed the
same way (``model.parameters()``, ``named_parameters()`` or param groups), has its argument
names and defaults, works with its schedulers and hooks, and reads and writes its
state_dict format. On construction the parameters move into one flat buffer per dtype
(each parameter's ``.data`` becomes a view of it) and the gradients into another, which
backward accumulates into while ``zero_grad(set_to_none=False)`` keeps them there. Needs
``pip install 'fastoptim[torch]'`` (torch>=2.13,<2.15).
"""

from __future__ import annotations

from types import MappingProxyType

try:
    import torch
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "fastoptim.torch needs PyTorch: pip install 'fastoptim[torch]' (torch>=2.13,<2.15)"
    ) from error

import fastoptim
from fastoptim.optim.asgd import eta_after, mu_after
from fastoptim.optim.nadam import mu_product
from fastoptim.torch.buckets import Bucket
from fastoptim.torch.declared import torch_class_for
from fastoptim.torch.optimizer import FlatOptimizer


def _adam_or_adamw(group: dict) -> type[fastoptim.Optimizer]:
    return fastoptim.AdamW if group["decoupled_weight_decay"] else fastoptim.Adam


class Adam(FlatOptimizer, torch.optim.Adam):
    """``torch.optim.Adam`` (``decoupled_weight_decay=True``: AdamW) on flat buffers;
    :class:`fastoptim.Adam` computes the update. ``capturable`` and ``differentiable``
    are refused; ``foreach`` and ``fused`` are accepted (the kernel is always fused)."""

    core_class = staticmethod(_adam_or_adamw)


class AdamW(FlatOptimizer, torch.optim.AdamW):
    """``torch.optim.AdamW`` on flat buffers; :class:`fastoptim.AdamW` computes the update."""

    core_class = staticmethod(_adam_or_adamw)


class SGD(FlatOptimizer, torch.optim.SGD):
    """``torch.optim.SGD`` on flat buffers; :class:`fastoptim.SGD` computes the update.
    As in torch, ``state[p]['momentum_buffer']`` exists only with momentum."""

    core_class = staticmethod(lambda group: fastoptim.SGD)
    has_step_state = False

    def _state_keys(self, bucket: Bucket) -> tuple[str, ...]:
        momentum = self.param_groups[bucket.group_index]["momentum"]
        return ("momentum_buffer",) if momentum != 0 else ()


class RMSprop(FlatOptimizer, torch.optim.RMSprop):
    """``torch.optim.RMSprop`` on flat buffers; :class:`fastoptim.RMSprop` computes the
    update (``grad_avg`` when centered, ``momentum_buffer`` with momentum, as torch)."""

    core_class = staticmethod(lambda group: fastoptim.RMSprop)


class Adagrad(FlatOptimizer, torch.optim.Adagrad):
    """``torch.optim.Adagrad`` on flat buffers; :class:`fastoptim.Adagrad` computes the
    update."""

    core_class = staticmethod(lambda group: fastoptim.Adagrad)


class NAdam(FlatOptimizer, torch.optim.NAdam):
    """``torch.optim.NAdam`` on flat buffers; :class:`fastoptim.NAdam` computes the update.
    ``state[p]['mu_product']`` is computed from the step count (float32, as torch's)."""

    core_class = staticmethod(lambda group: fastoptim.NAdam)
    step_functions = MappingProxyType(
        {
            "mu_product": lambda core, step: mu_product(
                core.settings.betas[0], core.settings.momentum_decay, step
            )
        }
    )


class RAdam(FlatOptimizer, torch.optim.RAdam):
    """``torch.optim.RAdam`` on flat buffers; :class:`fastoptim.RAdam` computes the update."""

    core_class = staticmethod(lambda group: fastoptim.RAdam)


class Adamax(FlatOptimizer, torch.optim.Adamax):
    """``torch.optim.Adamax`` on flat buffers; :class:`fastoptim.Adamax` computes the
    update."""

    core_class = staticmethod(lambda group: fastoptim.Adamax)


class Adadelta(FlatOptimizer, torch.optim.Adadelta):
    """``torch.optim.Adadelta`` on flat buffers; :class:`fastoptim.Adadelta` computes the
    update."""

    core_class = staticmethod(lambda group: fastoptim.Adadelta)


class ASGD(FlatOptimizer, torch.optim.ASGD):
    """``torch.optim.ASGD`` on flat buffers; :class:`fastoptim.ASGD` computes the update.
    ``state[p]['eta']`` and ``['mu']`` are carried as torch carries them: computed after
    each step from its lr and step count (float32), read by the next step; a loaded
    state's are used as they are."""

    core_class = staticmethod(lambda group: fastoptim.ASGD)
    step_functions = MappingProxyType(
        {
            "eta": lambda core, step: eta_after(core.settings, core.lr, step),
            "mu": lambda core, step: mu_after(core.settings, step),
        }
    )
    carried = ("eta", "mu")


class Adafactor(FlatOptimizer, torch.optim.Adafactor):
    """``torch.optim.Adafactor`` on flat buffers; :class:`fastoptim.Adafactor` computes the
    update (``state[p]['row_var']`` and ``['col_var']`` for a parameter of two or more
    dimensions, ``['variance']`` for the others, as torch)."""

    core_class = staticmethod(lambda group: fastoptim.Adafactor)


class Rprop(FlatOptimizer, torch.optim.Rprop):
    """``torch.optim.Rprop`` on flat buffers; :class:`fastoptim.Rprop` computes the update
    (``state[p]['prev']`` and ``['step_size']``; the step sizes start at the group's lr on a
    parameter's first step, as torch's)."""

    core_class = staticmethod(lambda group: fastoptim.Rprop)


Lion = torch_class_for(
    fastoptim.Lion,
    """Lion (torch.optim has none) as a ``torch.optim.Optimizer`` on flat buffers, with
    lion-pytorch's arguments and state (``state[p]['exp_avg']``, no ``step``);
    :class:`fastoptim.Lion` computes the update.""",
)
LAMB = torch_class_for(
    fastoptim.LAMB,
    """LAMB (torch.optim has none) as a ``torch.optim.Optimizer`` on flat buffers, with
    :class:`fastoptim.LAMB`'s arguments (optax.lamb's update) and torch's state layout
    (``state[p]['exp_avg']``, ``['exp_avg_sq']`` and ``['step']``); each parameter is one
    layer of the trust ratio. :class:`fastoptim.LAMB` computes the update.""",
    has_step_state=True,
)

from fastoptim.torch.schedule_free import AdamWScheduleFree  # noqa: E402  (needs the above)

__all__ = [
    "ASGD",
    "LAMB",
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "AdamWScheduleFree",
    "Adamax",
    "FlatOptimizer",
    "Lion",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
]
