"""time_: Adafactor's step on a factored 1000 x 9999 matrix and on a 9,999,000-element vector:
fastoptim.Adafactor, and torch.optim.Adafactor's for-loop form (torch's fastest on the CPU
here; skipped without torch). benchmarks/adafactor_speed.py reports the same with roofs."""

import importlib.util

import numpy as np

import fastoptim

SHAPES = {"matrix": (1000, 9999), "vector": (9_999_000,)}


def _arrays(layer):
    rng = np.random.default_rng(0)
    shape = SHAPES[layer]
    return rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(
        shape, dtype=np.float32
    ) * np.float32(1e-2)


class AdafactorStep:
    params = (list(SHAPES),)
    param_names = ("layer",)
    timeout = 240

    def setup(self, layer):
        param, grad = _arrays(layer)
        self.grads = {"w": grad}
        self.optimizer = fastoptim.Adafactor({"w": param}, lr=1e-3, nonfinite="ignore")
        self.optimizer.step(self.grads)  # compiled or loaded, never timed

    def time_fastoptim(self, layer):
        self.optimizer.step(self.grads)


class AdafactorTorchStep:
    params = (list(SHAPES),)
    param_names = ("layer",)
    timeout = 240

    def setup(self, layer):
        if importlib.util.find_spec("torch") is None:
            raise NotImplementedError("torch is not installed")
        import torch

        param, grad = _arrays(layer)
        tensor = torch.tensor(param, requires_grad=True)
        tensor.grad = torch.tensor(grad)
        self.step = torch.optim.Adafactor([tensor], lr=1e-3, foreach=False).step
        self.step()

    def time_torch_for_loop(self, layer):
        self.step()
