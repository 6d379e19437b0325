"""A typed registry: named items of one kind, in registration order; a taken name is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from aimass.errors import Conflict, NotFound


class Named(Protocol):
    """Anything a registry holds: it has a name."""

    @property
    def name(self) -> str:
        """The name it is registered and looked up under."""
        ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Items by name for one extension point (a slot of ``Registries``)."""

    def __init__(self, slot: str) -> None:
        self.slot = slot
        self._items: dict[str, T] = {}

    def register(self, item: T) -> None:
        """Add an item; a name already taken is a Conflict (built-ins load first, so they win).

        An item without a str name is a TypeError naming the slot.
        """
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.slot} must have a non-empty str name; got {item!r}")
        if item.name in self._items:
            raise Conflict(f"a {self.slot} named {item.name!r} is already registered")
        self._items[item.name] = item

    def get(self, name: str) -> T:
        """The item called ``name``; NotFound lists the known ones."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise NotFound(f"no {self.slot} named {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._items)

    def all(self) -> list[T]:
        """The registered items, in registration order."""
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)
