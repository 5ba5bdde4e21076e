"""Optimizer classes: hyper-parameters, validation, step counter, state and state_dict."""

from fastoptim.optim.adadelta import Adadelta
from fastoptim.optim.adafactor import Adafactor
from fastoptim.optim.adagrad import Adagrad
from fastoptim.optim.adam import Adam, AdamW
from fastoptim.optim.adamax import Adamax
from fastoptim.optim.asgd import ASGD
from fastoptim.optim.groups import Group
from fastoptim.optim.lamb import LAMB
from fastoptim.optim.lion import Lion
from fastoptim.optim.momentum import Momentum
from fastoptim.optim.nadam import NAdam
from fastoptim.optim.nonfinite import NonFiniteGradientError
from fastoptim.optim.optimizer import Optimizer
from fastoptim.optim.radam import RAdam
from fastoptim.optim.rmsprop import RMSprop
from fastoptim.optim.rprop import Rprop
from fastoptim.optim.schedule_free import AdamWScheduleFree
from fastoptim.optim.sgd import SGD

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
    "Group",
    "Lion",
    "Momentum",
    "NAdam",
    "NonFiniteGradientError",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
]
