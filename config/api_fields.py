"""Input fields of the JSON API that take only the JSON type the schema names.

DRF's fields coerce: a CharField takes 12 and stores "12", an IntegerField takes "12",
a BooleanField takes "yes". A client that sends the wrong type has a bug, and the schema
promises a refusal, so the API's input serializers use these instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.core.validators import RegexValidator
from rest_framework import serializers

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# White space as str.strip() sees it, spelled out: Python (the server, the fuzzer) and
# ECMAScript (JSON Schema validators) disagree on what \s means.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def not_blank(message: StrOrPromise) -> RegexValidator:
    """Refuses text with nothing but white space; the schema shows it as a pattern."""
    return RegexValidator(f"[^{_SPACE}]", message=message)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictDecimalField(serializers.DecimalField):
    """A decimal written as a string of ASCII digits ("2.5", "-0.25"), as the schema and
    the output spell it; DRF alone would also take numbers, "1e2", " 7" or "٣"."""

    @property
    def pattern(self) -> str:
        whole, places = self.max_whole_digits, self.decimal_places
        return rf"^-?(?:[0-9]{{1,{whole}}}(?:\.[0-9]{{1,{places}}})?|\.[0-9]{{1,{places}}})$"

    def to_internal_value(self, data: Any):
        if not isinstance(data, str) or not re.fullmatch(self.pattern, data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """One of the choices itself: 1 for the choice 1, never "1" or true."""

    def to_internal_value(self, data: Any) -> Any:
        if data == "" and self.allow_blank:
            return ""
        if isinstance(data, (str, int, float)) and not isinstance(data, bool):
            for choice in self.choices:
                if choice == data:
                    return choice
        self.fail("invalid_choice", input=data)
