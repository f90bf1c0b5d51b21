"""Shapes of the course-material API."""

from __future__ import annotations

from rest_framework import serializers

from material.models import Material
from material.retrieval import K_MAX, MODES


class SearchQuerySerializer(serializers.Serializer):
    # No length limit here: the selector reads only the first QUERY_MAX_CHARS characters.
    q = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=True)
    k = serializers.IntegerField(min_value=1, max_value=K_MAX, required=False, default=5)
    # ?mode= (empty) is the default mode, as an empty form field is.
    mode = serializers.ChoiceField(
        choices=MODES, required=False, allow_blank=True, default="hybrid"
    )

    def validate_mode(self, mode: str) -> str:
        return mode or "hybrid"


class SearchResultSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    material_id = serializers.IntegerField()
    title = serializers.CharField()
    section = serializers.CharField(allow_blank=True)
    page = serializers.IntegerField(allow_null=True)
    position = serializers.IntegerField()
    text = serializers.CharField()
    score = serializers.FloatField()
    url = serializers.CharField(help_text="The passage in its material's page.")
    headline = serializers.CharField(
        help_text="An excerpt as HTML: the text escaped, matched words in <mark>."
    )


class MaterialSerializer(serializers.ModelSerializer):
    # Declared: a read-only model field loses its blank choice in the schema, and "" is
    # what a material no worker is processing says.
    step = serializers.ChoiceField(
        choices=Material.Step.choices,
        allow_blank=True,
        read_only=True,
        help_text="What a worker is doing with it now; empty when none is.",
    )
    failure_reason = serializers.CharField(
        read_only=True, help_text="Why processing failed, for the teacher; empty unless it did."
    )
    can_process_again = serializers.BooleanField(
        read_only=True, help_text="Whether processing the same file again could succeed."
    )

    class Meta:
        model = Material
        fields = [
            "id",
            "title",
            "original_name",
            "kind",
            "size",
            "status",
            "progress",
            "step",
            "passages_done",
            "passages_total",
            "failure_reason",
            "can_process_again",
            "created",
            "ingested_at",
        ]
        read_only_fields = fields


class MaterialUploadSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False),
        min_length=1,
        help_text="One or more files: PDF, Word (.docx), Markdown, HTML or plain text.",
    )
