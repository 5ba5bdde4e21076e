"""The plain-numpy oracle: the course functions written as clearly as the course writes them.

Every fastoptim update is tested against these, step by step. They import nothing of
fastoptim. Unlike the fast versions they rebind dict entries to new arrays.
"""

from fastoptim.reference.adam import initialize_adam, update_parameters_with_adam
from fastoptim.reference.gd import update_parameters_with_gd
from fastoptim.reference.momentum import initialize_velocity, update_parameters_with_momentum

__all__ = [
    "initialize_adam",
    "initialize_velocity",
    "update_parameters_with_adam",
    "update_parameters_with_gd",
    "update_parameters_with_momentum",
]
