"""Numba kernels: pure loops over 1-D arrays and scalars. Nothing else.

Elementwise updates (``ElementwiseUpdate`` objects named ``<algorithm>_update``, each with
the NamedTuple of its scalars beside it) and reductions (modules ``norm`` and ``finite``:
the clipping norm and the NaN/Inf check). Each object keeps the name of what it is; the
modules keep theirs.
"""

from fastoptim.kernels import finite, norm, roof
from fastoptim.kernels.adagrad import AdagradScalars, adagrad_update
from fastoptim.kernels.adam import AdamScalars, adam_amsgrad_update, adam_update
from fastoptim.kernels.compiled import CompiledLoop
from fastoptim.kernels.elementwise import ElementwiseUpdate, UpdateLoop, new_record
from fastoptim.kernels.gd import GDScalars, gd_update
from fastoptim.kernels.momentum import MomentumScalars, momentum_update
from fastoptim.kernels.norm import block_bounds as norm_block_bounds
from fastoptim.kernels.norm import blocks as norm_blocks
from fastoptim.kernels.rmsprop import RMSpropScalars, rmsprop_update
from fastoptim.kernels.sgd import SGDScalars, sgd_update

__all__ = [
    "AdagradScalars",
    "AdamScalars",
    "CompiledLoop",
    "ElementwiseUpdate",
    "GDScalars",
    "MomentumScalars",
    "RMSpropScalars",
    "SGDScalars",
    "UpdateLoop",
    "adagrad_update",
    "adam_amsgrad_update",
    "adam_update",
    "finite",
    "gd_update",
    "momentum_update",
    "new_record",
    "norm",
    "norm_block_bounds",
    "norm_blocks",
    "rmsprop_update",
    "roof",
    "sgd_update",
]
