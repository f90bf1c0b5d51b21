"""Every model that can point at a person must say how its rows are exported and erased."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth import get_user_model

from config.privacy_registry import ANONYMISE, DELETE, DETACH, REGISTRY


def _models_pointing_at_the_user() -> set[str]:
    user_model = get_user_model()
    found = {user_model._meta.label_lower}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if (
                (field.many_to_one or field.one_to_one)
                and field.concrete
                and field.related_model is user_model
            ):
                found.add(model._meta.label_lower)
    return found


def test_every_model_with_a_foreign_key_to_the_user_is_registered():
    missing = _models_pointing_at_the_user() - set(REGISTRY)
    assert not missing, f"add a PrivacyRule to its app's privacy_rules.py for: {sorted(missing)}"


def test_every_registered_model_still_exists():
    gone = []
    for label in REGISTRY:
        try:
            apps.get_model(label)
        except LookupError:
            gone.append(label)
    assert not gone, f"remove from its app's privacy_rules.py: {gone}"


def test_every_rule_names_a_known_erasure_and_a_working_lookup():
    for label, rule in REGISTRY.items():
        assert rule.erase in {DELETE, DETACH, ANONYMISE}, label
        model = apps.get_model(label)
        # The lookup must resolve to the user; building the query checks every hop.
        str(model._default_manager.filter(**{rule.owner or "pk": 1}).query)


def test_detached_rules_are_nullable_foreign_keys_so_the_database_can_unlink_them():
    for label, rule in REGISTRY.items():
        if rule.erase == DETACH:
            field = apps.get_model(label)._meta.get_field(rule.owner)
            assert field.null, label
