"""The OpenAPI schema's view of errors: every operation documents what it answers when it
refuses, so a client (and the fuzz test in tests/trust/test_api_fuzz.py) can rely on
every status code and body the API sends."""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """DRF's answer to a refused request: one human-readable sentence."""

    detail = serializers.CharField()


# A serializer's errors: each field (``detail`` or ``non_field_errors`` for the request as
# a whole) maps to its messages, or, for a nested field, to the nested field's errors.
VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Field name to its error messages (nested fields nest the same way).",
    "additionalProperties": {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
            {"type": "object"},
        ]
    },
}


INVALID = "The input was refused; the body says why, field by field."
FORBIDDEN = "Not signed in, no CSRF token, or not allowed."
NOT_FOUND = "No such object, or one the user may not see."


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the error responses of every operation.

    403: not signed in (session authentication answers 403, not 401), a missing CSRF
    token, or a permission refused. 404: an unknown id in the path, or one the user may
    not see. 400: input the serializers or services refuse. Responses declared with
    ``extend_schema`` win over these.
    """

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        locations = {parameter["in"] for parameter in operation.get("parameters", [])}
        responses = operation["responses"]
        if "query" in locations or "requestBody" in operation:
            responses.setdefault("400", self._validation_error_response())
        responses.setdefault("403", self._error_response("403", FORBIDDEN))
        if "path" in locations:
            responses.setdefault("404", self._error_response("404", NOT_FOUND))
        return operation

    def _error_response(self, code: str, description: str) -> dict[str, Any]:
        return self._get_response_for_code(
            OpenApiResponse(ErrorSerializer, description=description), code
        )

    def _validation_error_response(self) -> dict[str, Any]:
        component = ResolvedComponent(
            name="ValidationError",
            type=ResolvedComponent.SCHEMA,
            schema=VALIDATION_ERROR_SCHEMA,
            object="ValidationError",
        )
        self.registry.register_on_missing(component)
        return self._get_response_for_code(
            OpenApiResponse(component.ref, description=INVALID), "400"
        )


class StrictDecimalFieldExtension(OpenApiSerializerFieldExtension):
    """The pattern the field enforces (drf-spectacular's own admits "" and "-.")."""

    target_class = "config.api_fields.StrictDecimalField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "format": "decimal", "pattern": self.target.pattern}
