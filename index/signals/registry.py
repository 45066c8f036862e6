"""The signals the index knows, by name: one registration line per signal module.

`register` takes a Signal subclass (usable as a decorator). Which registered signals a process
computes is each class's `enabled(settings)`: CLIP only with real weights, SSCD unless it is off.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from index.signals.base import Rule, Signal

if TYPE_CHECKING:
    from clipgate.settings import Settings

_registry: dict[str, type[Signal]] = {}
_lock = threading.Lock()


def register(cls: type[Signal]) -> type[Signal]:
    """Make a signal known to the index. Its name must be new, short and lowercase."""
    name = getattr(cls, "name", "")
    if not name or not name.isidentifier() or name != name.lower():
        raise ValueError(f"a signal needs a short lowercase name, not {name!r}")
    if getattr(cls, "kind", None) not in ("float", "binary"):
        raise ValueError(f"signal {name}: kind must be 'float' or 'binary'")
    with _lock:
        if name in _registry and _registry[name] is not cls:
            raise ValueError(f"a signal named {name!r} is registered already")
        _registry[name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a signal (tests that register a toy one)."""
    with _lock:
        _registry.pop(name, None)


def names() -> list[str]:
    """Every registered signal's name, in registration order."""
    return list(_registry)


def signal_class(name: str) -> type[Signal]:
    try:
        return _registry[name]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}; registered: {', '.join(_registry)}") from None


def active(settings: Settings) -> dict[str, Signal]:
    """The signals this process computes and searches, by name, in registration order."""
    return {name: cls(settings) for name, cls in list(_registry.items()) if cls.enabled(settings)}


def rules(settings: Settings) -> dict[str, Rule]:
    """The rule of every signal that can put a hit in a search result: the active global
    signals and the local features' geometric check."""
    from index.signals.orb import OrbRule  # orb.py imports this package: loaded on use

    out: dict[str, Rule] = dict(active(settings))
    out["orb"] = OrbRule(settings)
    return out
