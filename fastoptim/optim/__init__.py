"""Optimizer classes: hyper-parameters, validation, step counter, state and state_dict."""

from fastoptim.optim.adam import Adam
from fastoptim.optim.momentum import Momentum
from fastoptim.optim.nonfinite import NonFiniteGradientError
from fastoptim.optim.optimizer import Optimizer

__all__ = ["Adam", "Momentum", "NonFiniteGradientError", "Optimizer"]
