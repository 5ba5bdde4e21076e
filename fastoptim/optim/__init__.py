"""Optimizer classes: hyper-parameters, validation, step counter, state and state_dict."""

from fastoptim.optim.adagrad import Adagrad
from fastoptim.optim.adam import Adam, AdamW
from fastoptim.optim.groups import Group
from fastoptim.optim.lion import Lion
from fastoptim.optim.momentum import Momentum
from fastoptim.optim.nonfinite import NonFiniteGradientError
from fastoptim.optim.optimizer import Optimizer
from fastoptim.optim.rmsprop import RMSprop
from fastoptim.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Group",
    "Lion",
    "Momentum",
    "NonFiniteGradientError",
    "Optimizer",
    "RMSprop",
]
