"""Fill a database made by an older release with one row in (nearly) every table.

Run by ``tests/deploy/test_forward_migration.py`` with the *older* release's code
(``manage.py shell < this file``), after its ``load_demo``. It knows nothing about the
models: it walks them in foreign-key order and gives each required field a plain value of
its type, so a table added in that release is filled without this file changing. A model
whose constraints the plain values break is reported and left as the demo left it.
Prints one JSON line: the tables it could not fill.
"""

import datetime
import json
import uuid
from decimal import Decimal

from django.apps import apps
from django.db import IntegrityError, models, transaction
from django.utils import timezone

LOCAL_APPS = {"learners", "ai", "tutor", "grading", "lti", "material", "learning", "privacy"}


def _value(field, made):
    if isinstance(field, models.ForeignKey | models.OneToOneField):
        target = field.related_model
        if isinstance(field, models.OneToOneField):
            # A one-to-one target of its own, not one another row already holds.
            taken = field.model._default_manager.values_list(field.attname, flat=True)
            row = target._default_manager.exclude(pk__in=list(taken)).first()
            return row or made.get(target)
        return target._default_manager.first() or made.get(target)
    if field.choices:
        return field.choices[0][0]
    if getattr(field, "dimensions", None):  # pgvector's VectorField
        return [0.01] * field.dimensions
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.DecimalField):
        return Decimal("1")
    if isinstance(field, models.IntegerField | models.FloatField):
        return 1
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return datetime.date(2026, 1, 1)
    if isinstance(field, models.DurationField):
        return datetime.timedelta(seconds=1)
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.JSONField):
        return {}
    if isinstance(field, models.EmailField):
        return f"{uuid.uuid4().hex[:8]}@example.org"
    if isinstance(field, models.FileField):
        return "seed/file.txt"
    if isinstance(field, models.BinaryField):
        return b"seed"
    if isinstance(field, models.GenericIPAddressField):
        return "127.0.0.1"
    if isinstance(field, models.CharField | models.TextField):
        text = f"seed {uuid.uuid4().hex}"
        return text[: field.max_length] if field.max_length else text
    return None


def _depends(model):
    return {
        f.related_model
        for f in model._meta.concrete_fields
        if f.is_relation and f.related_model is not model
    }


def main():
    local = [
        m
        for m in apps.get_models()
        if m._meta.app_label in LOCAL_APPS and not m._meta.proxy and m._meta.managed
    ]
    ordered, seen = [], set()

    def visit(model, path=()):
        if model in seen or model in path:
            return
        for dependency in _depends(model):
            if dependency in local:
                visit(dependency, (*path, model))
        seen.add(model)
        ordered.append(model)

    for model in local:
        visit(model)
    made, unfilled = {}, {}
    for model in ordered:
        values = {}
        for field in model._meta.concrete_fields:
            if field.primary_key and field.auto_created or isinstance(field, models.AutoField):
                continue
            optional = field.null or field.has_default() or getattr(field, "auto_now", False)
            if optional and not field.is_relation:
                continue
            value = _value(field, made)
            if value is None and not field.null:
                continue
            values[field.name] = value
        try:
            with transaction.atomic():
                made[model] = model._default_manager.create(**values)
        except (IntegrityError, ValueError, TypeError) as error:
            unfilled[model._meta.label] = str(error).splitlines()[0][:200]
    print(json.dumps({"unfilled": unfilled, "filled": len(made)}))


main()
