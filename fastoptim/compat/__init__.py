"""Drop-ins with the exact names, arguments and return values of the classic course."""

from fastoptim.compat.adam import initialize_adam, update_parameters_with_adam
from fastoptim.compat.gd import update_parameters_with_gd
from fastoptim.compat.momentum import initialize_velocity, update_parameters_with_momentum

__all__ = [
    "initialize_adam",
    "initialize_velocity",
    "update_parameters_with_adam",
    "update_parameters_with_gd",
    "update_parameters_with_momentum",
]
