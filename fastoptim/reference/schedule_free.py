"""Schedule-Free AdamW in plain numpy, one layer at a time, in the order of the schedulefree
package's for-loop form (``AdamWScheduleFree.step`` with ``foreach=False``), and its mode
switches."""

import numpy as np


def initialize_schedule_free():
    """The state before the first step: ``z`` and ``exp_avg_sq`` by ``'d' + name`` (made
    at the first step, as the package does) and the group's running values."""
    return {}, {}, {"k": 0, "lr_max": -1.0, "weight_sum": 0.0, "train_mode": True}


def _lerp(start, end, weight):
    # torch's lerp: from the end when |weight| >= 0.5
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


def update_parameters_with_adamw_schedule_free(parameters, grads, z, exp_avg_sq, running, lr,
                                               betas, eps, weight_decay, warmup_steps, r,
                                               weight_lr_power, maximize):  # fmt: skip
    """One step; ``running`` (from ``initialize_schedule_free``) is updated in place."""
    if not running["train_mode"]:
        raise RuntimeError("step in eval mode")
    beta1, beta2 = betas
    k = running["k"]
    sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
    bias_correction2 = 1 - beta2 ** (k + 1)
    lr = lr * sched
    lr_max = running["lr_max"] = max(lr, running["lr_max"])
    weight = ((k + 1) ** r) * (lr_max**weight_lr_power)
    weight_sum = running["weight_sum"] = running["weight_sum"] + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0
    for name in list(parameters):
        key = "d" + name
        y = parameters[name]
        grad = -grads[key] if maximize else grads[key]
        if key not in z:
            z[key] = y.copy()
            exp_avg_sq[key] = np.zeros_like(y)
        v = exp_avg_sq[key] = exp_avg_sq[key] * beta2 + (1 - beta2) * grad * grad
        normalized = grad / (np.sqrt(v / bias_correction2) + eps)
        if weight_decay != 0:
            normalized = normalized + weight_decay * y
        y = _lerp(y, z[key], ckp1)
        parameters[name] = y + lr * (beta1 * (1 - ckp1) - 1) * normalized
        z[key] = z[key] - lr * normalized
    running["k"] = k + 1
    return parameters


def to_eval(parameters, z, running, beta1):
    """The parameters moved from y to x (``p.lerp_(z, 1 - 1/beta1)``)."""
    if running["train_mode"]:
        for name in list(parameters):
            if "d" + name in z:
                parameters[name] = _lerp(parameters[name], z["d" + name], 1 - 1 / beta1)
        running["train_mode"] = False


def to_train(parameters, z, running, beta1):
    """The parameters moved from x back to y (``p.lerp_(z, 1 - beta1)``)."""
    if not running["train_mode"]:
        for name in list(parameters):
            if "d" + name in z:
                parameters[name] = _lerp(parameters[name], z["d" + name], 1 - beta1)
        running["train_mode"] = True
