"""The training problems of the convergence study (``bench --convergence``): each trains one
model with Adam-family state stored one way and returns its loss curve and a held-out metric.

- ``demo``: the demo's large network (``fastoptim.demo.large``: 1024-1024-1024-1, 2.1
  million float32 parameters) on its teacher data, through the numpy API;
- ``digits``: a torch MLP (64-256-256-10) on scikit-learn's bundled 8x8 digits, through
  fastoptim.torch.AdamW;
- ``chars``: a small character-level transformer language model (2 layers, width 128)
  on the source text of a few standard-library modules, through fastoptim.torch.AdamW.

A "state" is one of ``STATES``. ``bfloat16-nearest`` is not an option of the optimizers: it
is simulated as float32 state rounded to nearest bfloat16 after every step, which stores
exactly what a kernel that rounds to nearest would (the step itself computes in float32 from
the decoded state in both).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import fastoptim
from fastoptim.kernels import bfloat16

STATES = ("float32", "bfloat16", "bfloat16-nearest", "int8")


@dataclass
class Run:
    """One training run: the training loss after every step and the held-out metric."""

    problem: str
    state: str
    seed: int
    lr_scale: float
    beta2: float
    losses: list[float] = field(default_factory=list)
    heldout: float = math.nan


def _state_dtype(state: str) -> str:
    return "float32" if state == "bfloat16-nearest" else state


def round_to_nearest_bfloat16(array: np.ndarray) -> None:
    """Round a float32 state array in place to nearest bfloat16 (the simulated storage)."""
    array[...] = bfloat16.decode_array(bfloat16.encode_array(array, bfloat16.ROUND_TO_NEAREST))


# -- (a) the demo's large network, numpy API -------------------------------------------------
def demo(state: str, seed: int, lr_scale: float = 1.0, beta2: float = 0.999) -> Run:
    from fastoptim.demo import large, network

    run = Run("demo network", state, seed, lr_scale, beta2)
    X, Y = large.large_data(n_samples=3072, seed=4)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    X_train, Y_train, X_test, Y_test = X[:, :2048], Y[:, :2048], X[:, 2048:], Y[:, 2048:]
    params = {
        k: v.astype(np.float32)
        for k, v in network.initialize_parameters(large.LARGE_DIMS, seed=seed).items()
    }
    lr = large.LARGE_LEARNING_RATE["adam"] * lr_scale
    opt = fastoptim.Adam(params, lr=lr, betas=(0.9, beta2), state_dtype=_state_dtype(state))
    grads = opt.params.zeros_like(prefix="d")
    order = np.random.default_rng(seed)
    for _epoch in range(8):
        permutation = order.permutation(X_train.shape[1])
        for start in range(0, X_train.shape[1], 64):
            batch = permutation[start : start + 64]
            x, y = X_train[:, batch], Y_train[:, batch]
            output, cache = network.forward_propagation(x, opt.params)
            run.losses.append(network.compute_cost(output, y))
            network.backward_propagation(x, y, opt.params, cache, grads)
            opt.step(grads)
            if state == "bfloat16-nearest":
                for buffer in opt.state.values():
                    round_to_nearest_bfloat16(buffer.buffer)
    run.heldout = network.accuracy(X_test, Y_test, opt.params)
    return run


# -- (b) and (c): torch models through fastoptim.torch ----------------------------------------
def _torch_training(
    run: Run, model, batches: Callable, lr: float, loss_of: Callable, steps: int
) -> None:
    import fastoptim.torch as fastoptim_torch

    optimizer = fastoptim_torch.AdamW(
        model.parameters(),
        lr=lr * run.lr_scale,
        betas=(0.9, run.beta2),
        weight_decay=0.01,
        state_dtype=_state_dtype(run.state),
    )
    for step in range(steps):
        x, y = batches(step)
        optimizer.zero_grad()
        loss = loss_of(model(x), y)
        loss.backward()
        optimizer.step()
        run.losses.append(loss.item())
        if run.state == "bfloat16-nearest":
            for state in optimizer.state.values():
                for key, value in state.items():
                    if key != "step":
                        round_to_nearest_bfloat16(value.numpy())


def digits(state: str, seed: int, lr_scale: float = 1.0, beta2: float = 0.999) -> Run:
    import torch
    from sklearn.datasets import load_digits

    run = Run("digits MLP", state, seed, lr_scale, beta2)
    data = load_digits()
    inputs = torch.tensor(data.data / 16.0, dtype=torch.float32)
    labels = torch.tensor(data.target, dtype=torch.long)
    split = np.random.default_rng(0).permutation(len(labels))  # the same split for every run
    train, test = split[:1300], split[1300:]
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )  # fmt: skip
    order = np.random.default_rng(seed)

    def batches(step):
        batch = torch.from_numpy(order.choice(train, 64, replace=False))
        return inputs[batch], labels[batch]

    loss_of = torch.nn.functional.cross_entropy
    _torch_training(run, model, batches, 1e-3, loss_of, steps=600)
    with torch.no_grad():
        predicted = model(inputs[test]).argmax(dim=1)
    run.heldout = float((predicted == labels[test]).float().mean())
    return run


CONTEXT = 64


def stdlib_text() -> str:
    """The text of the language model: the source of a few standard-library modules."""
    import argparse
    import difflib
    import textwrap

    return "".join(inspect.getsource(module) for module in (argparse, difflib, textwrap))


def chars(state: str, seed: int, lr_scale: float = 1.0, beta2: float = 0.999) -> Run:
    import torch

    run = Run("char transformer", state, seed, lr_scale, beta2)
    text = stdlib_text()
    vocabulary = sorted(set(text))
    codes = torch.tensor([vocabulary.index(c) for c in text], dtype=torch.long)
    held = len(codes) * 9 // 10
    train, test = codes[:held], codes[held:]
    torch.manual_seed(seed)
    model = char_transformer(len(vocabulary))
    order = np.random.default_rng(seed)

    def windows(source, starts):
        index = torch.from_numpy(starts)[:, None] + torch.arange(CONTEXT + 1)
        chunk = source[index]
        return chunk[:, :-1], chunk[:, 1:]

    def batches(step):
        return windows(train, order.integers(0, len(train) - CONTEXT - 1, 32))

    def loss_of(logits, targets):
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
        )

    _torch_training(run, model, batches, 3e-3, loss_of, steps=400)
    with torch.no_grad():
        starts = np.arange(0, len(test) - CONTEXT - 1, CONTEXT)
        x, y = windows(test, starts)
        run.heldout = float(loss_of(model(x), y)) / math.log(2)  # bits per character
    return run


def char_transformer(vocabulary: int):
    """Token and position embeddings, two pre-norm causal transformer layers (width 128,
    4 heads), a linear head: about 0.45 million parameters."""
    import torch

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = torch.nn.Embedding(vocabulary, 128)
            self.positions = torch.nn.Embedding(CONTEXT, 128)
            layer = torch.nn.TransformerEncoderLayer(
                128, 4, 512, dropout=0.0, batch_first=True, norm_first=True
            )
            self.layers = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = torch.nn.Linear(128, vocabulary)
            mask = torch.nn.Transformer.generate_square_subsequent_mask(CONTEXT)
            self.register_buffer("mask", mask)

        def forward(self, x):
            h = self.tokens(x) + self.positions(torch.arange(x.shape[1]))
            return self.head(self.layers(h, mask=self.mask, is_causal=True))

    return Model()


PROBLEMS: dict[str, Callable[..., Run]] = {"demo": demo, "digits": digits, "chars": chars}
