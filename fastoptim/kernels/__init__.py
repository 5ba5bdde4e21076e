"""Numba kernels: pure elementwise loops over 1-D arrays and scalars. Nothing else."""

from fastoptim.kernels import roof
from fastoptim.kernels.adagrad import adagrad
from fastoptim.kernels.adam import adam, adam_amsgrad
from fastoptim.kernels.elementwise import ElementwiseKernel
from fastoptim.kernels.finite import finite
from fastoptim.kernels.gd import gd
from fastoptim.kernels.momentum import momentum
from fastoptim.kernels.norm import block_bounds as norm_block_bounds
from fastoptim.kernels.norm import blocks as norm_blocks
from fastoptim.kernels.norm import norm
from fastoptim.kernels.rmsprop import rmsprop
from fastoptim.kernels.sgd import sgd

__all__ = [
    "ElementwiseKernel",
    "adagrad",
    "adam",
    "adam_amsgrad",
    "finite",
    "gd",
    "momentum",
    "norm",
    "norm_block_bounds",
    "norm_blocks",
    "rmsprop",
    "roof",
    "sgd",
]
