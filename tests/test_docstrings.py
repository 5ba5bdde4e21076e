"""The examples in the public docstrings run and print what they claim."""

from __future__ import annotations

import doctest

import pytest

import fastoptim.optim.adam
import fastoptim.optim.momentum


@pytest.mark.parametrize(
    "module", [fastoptim.optim.adam, fastoptim.optim.momentum], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    failures, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failures == 0
