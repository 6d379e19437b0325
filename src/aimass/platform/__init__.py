"""The composition root: one ``Platform`` a process, built from ``Settings``.

Owns the assembly of a process (storage, registries, executor, background
services, the notifier); every other package is handed what it needs from
here. May import every domain package; must not import ``aimass.api``,
``aimass.client`` or ``aimass.cli``.
"""

from __future__ import annotations

from aimass.platform.notifier import TOPICS, LocalNotifier, Notifier, Topic
from aimass.platform.root import Platform, entry_catalog
from aimass.platform.services import Registration, Services, Where

__all__ = [
    "TOPICS",
    "LocalNotifier",
    "Notifier",
    "Platform",
    "Registration",
    "Services",
    "Topic",
    "Where",
    "entry_catalog",
]
