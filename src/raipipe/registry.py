"""One registry type for everything users extend: model backends, judges, and next attack strategies,
converters and guard rules.

A plug-in is one class with a `name`, registered with the decorator, or from another package through
a Python entry point in the registry's group (e.g. `[project.entry-points."raipipe.judges"]
mine = "my_pkg.judges:MyJudge"`), loaded the first time the registry is read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from raipipe.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str, builtins: Callable[[], None] | None = None):
        self.kind, self.group = kind, group
        self._builtins = builtins
        self._items: dict[str, type[T]] = {}
        self._loaded = self._complete = False
        self._loading = threading.RLock()  # threads wait for a complete registry; the loading thread re-enters

    def register(self, cls: type[T]) -> type[T]:
        name = getattr(cls, "name", "")
        if not name:
            raise ValueError(f"{cls.__name__} needs a class attribute `name` to be registered as a {self.kind}")
        self._items[name] = cls
        return cls

    def _load(self) -> None:
        if self._complete:
            return
        with self._loading:  # other threads wait here until the registry is complete
            if self._loaded:  # complete, or being loaded by this very thread (a built-in reading it on import)
                return
            self._loaded = True
            if self._builtins:
                self._builtins()
            for ep in entry_points(group=self.group):
                if ep.name not in self._items:
                    self.register(ep.load())
            self._complete = True

    def all(self) -> dict[str, type[T]]:
        self._load()
        return dict(sorted(self._items.items()))

    def get(self, name: str) -> type[T]:
        items = self.all()
        if name not in items:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {sorted(items)}")
        return items[name]
