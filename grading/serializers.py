"""Shapes of the grading API: serializers validate input and shape output; services act."""

from __future__ import annotations

from rest_framework import serializers


class ProposalCriterionSerializer(serializers.Serializer):
    score = serializers.FloatField()
    rationale = serializers.CharField(allow_blank=True)
    evidence = serializers.ListField(child=serializers.CharField())
    confidence = serializers.FloatField()


class ProposalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    status = serializers.CharField()
    criteria = serializers.DictField(child=ProposalCriterionSerializer())
    feedback = serializers.DictField()
    dropped_quotes = serializers.IntegerField()
    notice = serializers.CharField(allow_blank=True)
    model_name = serializers.CharField(allow_blank=True)
    prompt_version = serializers.CharField(allow_blank=True)


class QueueItemSerializer(serializers.Serializer):
    submission_id = serializers.IntegerField(source="submission.pk")
    learner = serializers.CharField(source="submission.learner.name")
    submitted_at = serializers.DateTimeField(source="submission.submitted_at")
    status = serializers.CharField()
    priority = serializers.FloatField()
    flagged = serializers.BooleanField()
    flags = serializers.ListField(child=serializers.DictField())
    proposals = ProposalSerializer(source="submission.proposals.all", many=True)


class SubmissionInSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False, allow_blank=True)


class SubmissionOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    word_count = serializers.IntegerField()
    flagged = serializers.BooleanField()


class ReleasedCriterionSerializer(serializers.Serializer):
    name = serializers.CharField()
    score = serializers.CharField()
    min = serializers.CharField()
    max = serializers.CharField()
    comment = serializers.CharField(allow_blank=True)
    evidence = serializers.ListField(child=serializers.CharField())


class GradeSerializer(serializers.Serializer):
    status = serializers.CharField()
    released_at = serializers.DateTimeField(allow_null=True)
    total = serializers.CharField(allow_null=True)
    max_total = serializers.CharField(allow_null=True)
    criteria = ReleasedCriterionSerializer(many=True)
    strengths = serializers.ListField(child=serializers.CharField())
    next_steps = serializers.ListField(child=serializers.CharField())


class CriterionDecisionInSerializer(serializers.Serializer):
    score = serializers.DecimalField(max_digits=6, decimal_places=2)
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    comment = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)


class CriterionDecisionOutSerializer(serializers.Serializer):
    criterion_id = serializers.IntegerField()
    score = serializers.DecimalField(max_digits=6, decimal_places=2)
    review_status = serializers.CharField()


class AgreementRowSerializer(serializers.Serializer):
    name = serializers.CharField()
    source = serializers.CharField()
    n = serializers.IntegerField()
    qwk = serializers.FloatField(allow_null=True)
    exact = serializers.FloatField(allow_null=True)
    adjacent = serializers.FloatField(allow_null=True)
    smd = serializers.FloatField(allow_null=True)


class AgreementSerializer(serializers.Serializer):
    final_count = serializers.IntegerField()
    rows = AgreementRowSerializer(many=True)
    overall = serializers.ListField(child=serializers.DictField())
    groups = serializers.ListField(child=serializers.DictField())
    has_group_data = serializers.BooleanField()
