"""The privacy registry: every model that holds personal data, and how its rows of one
person are found, exported and erased.

Each app declares its own models in its ``privacy_rules.py`` and registers them from its
``AppConfig.ready()``; the ``privacy`` app (export, erasure, retention) iterates
``REGISTRY``. ``tests/privacy`` fails when a model with a foreign key to the user is
missing from it. This module imports no app, so every app may register here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DELETE = "delete"  # the rows go with the person (cascade, or deleted explicitly)
DETACH = "detach"  # the row is the school's; its link to the person is nulled (SET_NULL)
ANONYMISE = "anonymise"  # the row stays, its personal content is removed
# Export every concrete column: for tables whose new columns are all the person's own.
ALL_FIELDS = ("__all__",)


@dataclass(frozen=True)
class PrivacyRule:
    """How one model's rows of one person are found, exported and erased.

    ``owner`` is the lookup from the model to the user ("" for the user model itself);
    ``export`` is a tuple of field lookups, or a callable ``(user) -> JSON-ready data``
    shared by every rule of the same ``group``.
    """

    group: str
    owner: str
    export: tuple[str, ...] | Callable[[Any], Any]
    erase: str


# "app_label.modelname" -> its rule, in the order the apps registered them.
REGISTRY: dict[str, PrivacyRule] = {}


def privacy_register(rules: dict[str, PrivacyRule]) -> None:
    """Add an app's rules (from its ``AppConfig.ready()``); registering the same rule again
    is harmless, a different rule for a registered model is a mistake."""
    for label, rule in rules.items():
        if label != label.lower():
            raise ValueError(f"privacy rules are keyed by lower-case model labels: {label!r}")
        if REGISTRY.get(label, rule) != rule:
            raise ValueError(f"{label} is registered twice with different privacy rules")
        if rule.erase not in {DELETE, DETACH, ANONYMISE}:
            raise ValueError(f"{label}: unknown erasure {rule.erase!r}")
        REGISTRY[label] = rule
