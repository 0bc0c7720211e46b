"""The public API of the package: what ``from memento import *`` gives."""

from __future__ import annotations

import types

import memento


def test_all_names_every_public_name_sorted() -> None:
    # httpx's rule: a public name defined in memento/__init__.py is in __all__, and
    # __all__ names nothing that is not there
    public = {
        name
        for name, value in vars(memento).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(memento.__all__) - {"__version__"} == public
    assert all(hasattr(memento, name) for name in memento.__all__)
    assert memento.__all__ == sorted(memento.__all__, key=lambda n: (not n.isupper(), n))
