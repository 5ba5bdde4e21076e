"""torch's Rprop (Riedmiller & Braun, 1993), one pass over the buffer."""

from typing import NamedTuple

import numba

from fastoptim.kernels.elementwise import ElementwiseUpdate


class RpropScalars(NamedTuple):
    """The scalar arguments of the Rprop kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    etaminus: float
    etaplus: float
    step_size_min: float
    step_size_max: float
    first: float  # 1.0 on a layer's first step: its step sizes start at initial_step_size
    initial_step_size: float  # lr


@numba.njit(inline="always")
def rprop(
    p, g, prev, step_size,
    sign, etaminus, etaplus, step_size_min, step_size_max, first, initial_step_size,
):  # fmt: skip
    """One element of Rprop: the step size grows by etaplus where the gradient kept its
    sign, shrinks by etaminus where it flipped (and that gradient is then taken as 0), and
    the parameter moves by the step size against the gradient's sign. Returns the new
    parameter, the gradient kept as ``prev`` and the step size."""
    g = sign * g
    size = initial_step_size if first != 0.0 else step_size
    product = g * prev
    if product > 0.0:
        size = size * etaplus
    elif product < 0.0:
        size = size * etaminus
        g = sign - sign  # +0 in the dtype of the element (torch sets 0)
    size = min(max(size, step_size_min), step_size_max)
    if g > 0.0:
        p = p - size
    elif g < 0.0:
        p = p + size
    return p, g, size


rprop_update = ElementwiseUpdate(
    rprop, n_state=2, scalars=RpropScalars, switches={"first": 0.0}, unsigned={1}
)
