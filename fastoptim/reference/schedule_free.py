"""Schedule-Free AdamW in plain numpy, one layer at a time, in the order of the schedulefree
package's for-loop form (``AdamWScheduleFree.step`` with ``foreach=False``), and its mode
switches. Each layer keeps the running values the package keeps per param group (its step
count ``k``, ``lr_max`` and ``weight_sum``): layers stepped together at one rate keep the
same ones."""

import numpy as np


def initialize_schedule_free():
    """The state before the first step, keyed ``'d' + name``: ``z``, ``exp_avg_sq`` and each
    layer's running values ``{'k', 'lr_max', 'weight_sum'}``, each made at the layer's
    first step (as the package makes its state) unless given."""
    return {}, {}, {}


def lerp(start, end, weight):
    """torch's lerp, ``start + weight (end - start)``: from the end when |weight| >= 0.5."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


def update_parameters_with_adamw_schedule_free(parameters, grads, z, exp_avg_sq, sums, lr,
                                               betas, eps, weight_decay, warmup_steps, r,
                                               weight_lr_power, maximize):  # fmt: skip
    """One step of every layer of ``parameters`` (in train mode: they hold y)."""
    beta1, beta2 = betas
    for name in list(parameters):
        key = "d" + name
        y = parameters[name]
        if key not in z:
            z[key] = y.copy()
            exp_avg_sq[key] = np.zeros_like(y)
        running = sums.setdefault(key, {"k": 0, "lr_max": -1.0, "weight_sum": 0.0})
        k = running["k"]
        sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
        bias_correction2 = 1 - beta2 ** (k + 1)
        scheduled = lr * sched
        lr_max = running["lr_max"] = max(scheduled, running["lr_max"])
        weight = ((k + 1) ** r) * (lr_max**weight_lr_power)
        weight_sum = running["weight_sum"] = running["weight_sum"] + weight
        ckp1 = weight / weight_sum if weight_sum != 0 else 0
        running["k"] = k + 1
        grad = -grads[key] if maximize else grads[key]
        v = exp_avg_sq[key] = exp_avg_sq[key] * beta2 + (1 - beta2) * grad * grad
        normalized = grad / (np.sqrt(v / bias_correction2) + eps)
        if weight_decay != 0:
            normalized = normalized + weight_decay * y
        y = lerp(y, z[key], ckp1)
        parameters[name] = y + scheduled * (beta1 * (1 - ckp1) - 1) * normalized
        z[key] = z[key] - scheduled * normalized
    return parameters


def to_eval(parameters, z, beta1):
    """The parameters moved from y to x (``p.lerp_(z, 1 - 1/beta1)``)."""
    for name in list(parameters):
        if "d" + name in z:
            parameters[name] = lerp(parameters[name], z["d" + name], 1 - 1 / beta1)


def to_train(parameters, z, beta1):
    """The parameters moved from x back to y (``p.lerp_(z, 1 - beta1)``)."""
    for name in list(parameters):
        if "d" + name in z:
            parameters[name] = lerp(parameters[name], z["d" + name], 1 - beta1)
