"""time_: the torch.optim classes without a fused CPU form (NAdam, RAdam, Adamax, Adadelta,
Rprop, ASGD) in torch's fastest form, foreach, against fastoptim.torch's class of the same name on
the same parameters (needs torch; skipped without it)."""

import importlib.util

from fastoptim.bench.contenders import FastoptimTorch, Torch

from .common import problem

ALGORITHMS = ["nadam", "radam", "adamax", "adadelta", "rprop", "asgd"]


class TorchStep:
    params = (ALGORITHMS, [10_000_000])
    param_names = ("algorithm", "elements")
    timeout = 240

    def setup(self, algorithm, n_elements):
        if importlib.util.find_spec("torch") is None:
            raise NotImplementedError("torch is not installed")
        self.contenders = {}
        for kind, contender in (("torch", Torch("foreach")), ("fastoptim", FastoptimTorch())):
            this_problem = problem(algorithm, n_elements)
            contender.setup(this_problem, *this_problem.inputs())
            contender.step()  # compiled or loaded, never timed
            self.contenders[kind] = contender

    def time_torch_foreach(self, algorithm, n_elements):
        self.contenders["torch"].step()

    def time_fastoptim_torch(self, algorithm, n_elements):
        self.contenders["fastoptim"].step()
