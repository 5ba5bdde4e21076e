"""The examples in the public docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

import fastoptim

# the module of every optimizer class fastoptim exports
MODULES = sorted(
    {
        obj.__module__
        for obj in vars(fastoptim).values()
        if inspect.isclass(obj)
        and issubclass(obj, fastoptim.Optimizer)
        and obj is not fastoptim.Optimizer
    }
)
assert len(MODULES) >= 11, MODULES  # Adam and AdamW share one


@pytest.mark.parametrize("module", [importlib.import_module(name) for name in MODULES], ids=str)
def test_docstring_examples(module):
    failures, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failures == 0
