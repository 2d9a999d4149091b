"""The examples in the docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mrcio

MODULES = sorted(
    f"mrcio.{m.name}" for m in pkgutil.iter_modules(mrcio.__path__) if m.name != "__main__"
)


def test_modules_are_found() -> None:
    assert {"mrcio.codecs", "mrcio.writer", "mrcio.lazy", "mrcio.stats"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
