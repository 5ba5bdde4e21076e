"""fastoptim: optimizer updates for models on the CPU, one Numba kernel over one flat buffer.

Course code switches by changing one import::

    from fastoptim import initialize_adam, update_parameters_with_adam

Larger models use the flat buffer and the object API::

    params = fastoptim.flatten(parameters)
    opt = fastoptim.Adam(params, lr=1e-3)
    opt.step(grads)
"""

from fastoptim import reference, schedules
from fastoptim.checkpoint import CheckpointError, load, save
from fastoptim.compat import (
    initialize_adam,
    initialize_velocity,
    update_parameters_with_adam,
    update_parameters_with_gd,
    update_parameters_with_momentum,
)
from fastoptim.flat import FlatParams, Layout, flatten
from fastoptim.optim import (
    ASGD,
    LAMB,
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    AdamWScheduleFree,
    Group,
    Lion,
    Momentum,
    NAdam,
    NonFiniteGradientError,
    Optimizer,
    RAdam,
    RMSprop,
    Rprop,
)
from fastoptim.optim.conversion import convert_state_dtype
from fastoptim.threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # fastoptim.torch and fastoptim.distributed need optional extras (torch, mpi4py):
    # loaded on first use only
    if name in ("torch", "distributed"):
        import importlib

        return importlib.import_module(f"fastoptim.{name}")
    raise AttributeError(f"module 'fastoptim' has no attribute {name!r}")


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
    "CheckpointError",
    "FlatParams",
    "Group",
    "Layout",
    "Lion",
    "Momentum",
    "NAdam",
    "NonFiniteGradientError",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
    "convert_state_dtype",
    "flatten",
    "get_num_threads",
    "initialize_adam",
    "initialize_velocity",
    "load",
    "num_threads",
    "reference",
    "save",
    "schedules",
    "set_num_threads",
    "update_parameters_with_adam",
    "update_parameters_with_gd",
    "update_parameters_with_momentum",
]
