"""Roof kernels: the memory traffic of an update with trivial arithmetic.

A kernel cannot stream its arrays faster than these: they read and write exactly what an
update with one state buffer (Momentum, SGD, Adagrad, RMSprop: 3 reads, 2 writes), two
(Adam, AdamW: 4 reads, 3 writes) or three (AMSGrad: 5 reads, 4 writes) does, and add
numbers. The bench reports every update's time as a percentage of its roof.
"""

from typing import NamedTuple

from fastoptim.kernels.elementwise import ElementwiseUpdate


class NoScalars(NamedTuple):
    """A roof kernel takes no scalars."""


def _adam_roof_body(loop):
    def adam_roof(param, grad, exp_avg, exp_avg_sq):
        # Mutates param, exp_avg, exp_avg_sq; the traffic of Adam, none of its arithmetic.
        for i in loop(param.size):
            g = grad[i]
            exp_avg[i] = exp_avg[i] + g
            exp_avg_sq[i] = exp_avg_sq[i] + g
            param[i] = param[i] + g

    return adam_roof


def _momentum_roof_body(loop):
    def momentum_roof(param, grad, velocity):
        # Mutates param and velocity; the traffic of Momentum, none of its arithmetic.
        for i in loop(param.size):
            g = grad[i]
            velocity[i] = velocity[i] + g
            param[i] = param[i] + g

    return momentum_roof


def _amsgrad_roof_body(loop):
    def amsgrad_roof(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq):
        # Mutates param and the three states; the traffic of AMSGrad.
        for i in loop(param.size):
            g = grad[i]
            exp_avg[i] = exp_avg[i] + g
            exp_avg_sq[i] = exp_avg_sq[i] + g
            max_exp_avg_sq[i] = max_exp_avg_sq[i] + g
            param[i] = param[i] + g

    return amsgrad_roof


amsgrad_roof = ElementwiseUpdate(_amsgrad_roof_body, n_state=3, scalars=NoScalars)
adam_roof = ElementwiseUpdate(_adam_roof_body, n_state=2, scalars=NoScalars)
momentum_roof = ElementwiseUpdate(_momentum_roof_body, n_state=1, scalars=NoScalars)

# the roof of an update with this many state buffers
FOR_STATES = {1: momentum_roof, 2: adam_roof, 3: amsgrad_roof}
