"""Numba kernels: pure elementwise loops over 1-D arrays and scalars. Nothing else."""

from fastoptim.kernels import roof
from fastoptim.kernels.adam import adam
from fastoptim.kernels.elementwise import ElementwiseKernel
from fastoptim.kernels.finite import finite
from fastoptim.kernels.gd import gd
from fastoptim.kernels.momentum import momentum

__all__ = ["ElementwiseKernel", "adam", "finite", "gd", "momentum", "roof"]
