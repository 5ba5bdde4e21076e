"""torch's ``optimizer.state``, kept so that writes by outside code are noticed.

A fastoptim.torch optimizer exposes each parameter's state as views of its flat buffers.
Outside code may put other tensors there (ZeroRedundancyOptimizer's ``load_state_dict``
assigns ``optim.state[p] = {...}``; a user may assign ``state[p]['exp_avg'] = t``). Both
dicts below note such writes, so the next step adopts the new values into the buffers (at
the cost of one attribute read per step) instead of silently stepping the old ones.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


class _NotesWrites:
    """Every method of a dict that writes calls ``_note`` first."""

    def _note(self) -> None:
        raise NotImplementedError

    def __setitem__(self, key: Any, value: Any) -> None:
        self._note()
        super().__setitem__(key, value)  # type: ignore[misc]

    def __delitem__(self, key: Any) -> None:
        self._note()
        super().__delitem__(key)  # type: ignore[misc]

    def pop(self, *args: Any) -> Any:
        self._note()
        return super().pop(*args)  # type: ignore[misc]

    def popitem(self) -> Any:
        self._note()
        return super().popitem()  # type: ignore[misc]

    def setdefault(self, *args: Any) -> Any:
        self._note()
        return super().setdefault(*args)  # type: ignore[misc]

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._note()
        super().update(*args, **kwargs)  # type: ignore[misc]

    def clear(self) -> None:
        self._note()
        super().clear()  # type: ignore[misc]


class StateTable(_NotesWrites, defaultdict):
    """``defaultdict(dict)`` by parameter; ``written`` is set by every write but ``put``.
    Copies and pickles are plain ``defaultdict(dict)``: they are no longer the optimizer's."""

    def __init__(self) -> None:
        super().__init__(dict)
        self.written = False

    def _note(self) -> None:
        self.written = True

    def put(self, param: Any, state: dict) -> None:
        """The optimizer's own write: not noted."""
        defaultdict.__setitem__(self, param, state)

    def drop(self, param: Any) -> None:
        """The optimizer's own removal: not noted."""
        defaultdict.pop(self, param, None)

    def __reduce__(self) -> Any:
        return (defaultdict, (dict,), None, None, iter(self.items()))


class ExposedState(_NotesWrites, dict):
    """One parameter's torch-format state, views of the buffers; a write to it marks both
    itself and its table as written. Copies and pickles are plain dicts."""

    def __init__(self, table: StateTable, values: dict) -> None:
        super().__init__(values)
        self.table = table
        self.written = False

    def _note(self) -> None:
        self.written = True
        self.table.written = True

    def refill(self, values: dict) -> None:
        """The optimizer's own rewrite after adopting what was written here: not noted, so
        whoever holds this dict keeps writing to the parameter's live state."""
        dict.clear(self)
        dict.update(self, values)
        self.written = False

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))
