"""torch.optim's Adam, AdamW and SGD in plain numpy, on dicts keyed like the course.

Written as torch's documentation writes the algorithms, one layer at a time; the
specification the object API's torch-form optimizers are tested against (and the tests
check these against torch itself where it is installed). States are dicts keyed
``'d' + name``; the functions rebind dict entries to new arrays.
"""

import numpy as np


def initialize_state(parameters, count):
    """``count`` state dicts of zeros, each keyed ``'d' + name``."""
    return tuple(
        {"d" + name: np.zeros_like(p) for name, p in parameters.items()} for _ in range(count)
    )


def _signed_grad(grad, param, weight_decay, maximize):
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    return g


def update_parameters_with_torch_adam(
    parameters, grads, states, t, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled
):
    """torch.optim.Adam (``decoupled=False``) or AdamW (``decoupled=True``), step ``t``."""
    beta1, beta2 = betas
    exp_avg, exp_avg_sq = states[0], states[1]
    for name in list(parameters):
        key = "d" + name
        param = parameters[name]
        if decoupled:
            param = param * (1 - lr * weight_decay)
            g = _signed_grad(grads[key], param, 0, maximize)
        else:
            g = _signed_grad(grads[key], param, weight_decay, maximize)
        exp_avg[key] = beta1 * exp_avg[key] + (1 - beta1) * g
        exp_avg_sq[key] = beta2 * exp_avg_sq[key] + (1 - beta2) * g * g
        second = exp_avg_sq[key]
        if amsgrad:
            states[2][key] = np.maximum(states[2][key], exp_avg_sq[key])
            second = states[2][key]
        m_hat = exp_avg[key] / (1 - beta1**t)
        v_hat = second / (1 - beta2**t)
        parameters[name] = param - lr * m_hat / (np.sqrt(v_hat) + eps)
    return parameters, states


def update_parameters_with_torch_sgd(
    parameters, grads, states, t, lr, momentum, dampening, weight_decay, nesterov, maximize
):
    """torch.optim.SGD, step ``t``: the momentum buffer is the gradient itself at t = 1."""
    (buffers,) = states
    for name in list(parameters):
        key = "d" + name
        g = _signed_grad(grads[key], parameters[name], weight_decay, maximize)
        if momentum != 0:
            if t == 1:
                buffers[key] = np.array(g, copy=True)
            else:
                buffers[key] = momentum * buffers[key] + (1 - dampening) * g
            g = g + momentum * buffers[key] if nesterov else buffers[key]
        parameters[name] = parameters[name] - lr * g
    return parameters, states


def initialize_adagrad(parameters, initial_accumulator_value):
    """torch's Adagrad state: ``sum`` starts at ``initial_accumulator_value``."""
    return (
        {"d" + name: np.full_like(p, initial_accumulator_value) for name, p in parameters.items()},
    )


def update_parameters_with_torch_adagrad(
    parameters,
    grads,
    states,
    t,
    lr,
    lr_decay,
    weight_decay,
    initial_accumulator_value,
    eps,
    maximize,
):
    """torch.optim.Adagrad, step ``t``."""
    (sums,) = states
    clr = lr / (1 + (t - 1) * lr_decay)
    for name in list(parameters):
        key = "d" + name
        g = _signed_grad(grads[key], parameters[name], weight_decay, maximize)
        sums[key] = sums[key] + g * g
        parameters[name] = parameters[name] - clr * g / (np.sqrt(sums[key]) + eps)
    return parameters, states


def clip_by_global_norm(grads, max_norm):
    """``torch.nn.utils.clip_grad_norm_``: scale every gradient by
    ``min(1, max_norm / (norm + 1e-6))``, ``norm`` the 2-norm of all of them together."""
    norm = np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
    scale = min(1.0, max_norm / (norm + 1e-6))
    return {key: g * scale for key, g in grads.items()}


def update_parameters_with_torch_rmsprop(
    parameters, grads, states, t, lr, alpha, eps, weight_decay, momentum, centered, maximize
):
    """torch.optim.RMSprop, step ``t``. ``states``: (square_avg, [grad_avg], [momentum_buffer])."""
    square_avg, rest = states[0], list(states[1:])
    grad_avg = rest.pop(0) if centered else None
    buffers = rest.pop(0) if momentum != 0 else None
    for name in list(parameters):
        key = "d" + name
        g = _signed_grad(grads[key], parameters[name], weight_decay, maximize)
        square_avg[key] = alpha * square_avg[key] + (1 - alpha) * g * g
        if centered:
            grad_avg[key] = grad_avg[key] + (1 - alpha) * (g - grad_avg[key])
            avg = np.sqrt(square_avg[key] - grad_avg[key] * grad_avg[key]) + eps
        else:
            avg = np.sqrt(square_avg[key]) + eps
        if momentum != 0:
            buffers[key] = momentum * buffers[key] + g / avg
            parameters[name] = parameters[name] - lr * buffers[key]
        else:
            parameters[name] = parameters[name] - lr * g / avg
    return parameters, states
