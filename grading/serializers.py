"""Shapes of the grading API: serializers validate input and shape output; services act."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from config.api_fields import StrictCharField, StrictDecimalField, not_blank
from grading.submissions import ESSAY_MAX_WORDS


class ProposalCriterionSerializer(serializers.Serializer):
    score = serializers.FloatField()
    rationale = serializers.CharField(allow_blank=True)
    evidence = serializers.ListField(child=serializers.CharField())
    confidence = serializers.FloatField()


class ProposalFeedbackSerializer(serializers.Serializer):
    # Absent on the learned scorer's proposals, which write no feedback.
    strengths = serializers.ListField(child=serializers.CharField(), required=False)
    next_steps = serializers.ListField(child=serializers.CharField(), required=False)


class FlagSerializer(serializers.Serializer):
    """A sign of manipulation found in the essay (grading/manipulation.py)."""

    code = serializers.CharField()
    message = serializers.CharField()
    excerpt = serializers.CharField(allow_blank=True)
    passages = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Passages the uploaded file hid from view (code hidden_file).",
    )


class ProposalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    # The stubs see Field.source here (hence the ignore); DRF takes declared fields off the class.
    source = serializers.CharField()  # type: ignore[assignment]
    status = serializers.CharField()
    criteria = serializers.DictField(child=ProposalCriterionSerializer())
    feedback = ProposalFeedbackSerializer()
    dropped_quotes = serializers.IntegerField()
    notice = serializers.CharField(allow_blank=True)
    model_name = serializers.CharField(allow_blank=True)
    prompt_version = serializers.CharField(allow_blank=True)


class EarlierVersionSerializer(serializers.Serializer):
    """A learner's other version of the same essay, with the grade released for it."""

    number = serializers.IntegerField()
    submission_id = serializers.IntegerField(source="submission.pk")
    submitted_at = serializers.DateTimeField(source="submission.submitted_at")
    is_current = serializers.BooleanField()
    status = serializers.CharField(allow_blank=True)
    released_at = serializers.DateTimeField(allow_null=True)
    released_total = serializers.SerializerMethodField()
    max_total = serializers.SerializerMethodField()

    def get_released_total(self, version) -> str | None:
        return (version.released or {}).get("total")

    def get_max_total(self, version) -> str | None:
        return (version.released or {}).get("max_total")


class QueueItemSerializer(serializers.Serializer):
    submission_id = serializers.IntegerField(source="submission.pk")
    learner = serializers.CharField(source="submission.learner.name")
    submitted_at = serializers.DateTimeField(source="submission.submitted_at")
    status = serializers.CharField()
    priority = serializers.FloatField()
    flagged = serializers.BooleanField()
    flags = FlagSerializer(many=True)
    proposals = ProposalSerializer(source="submission.proposals.all", many=True)
    version = serializers.IntegerField(help_text="1 for the learner's first version.")
    earlier_versions = EarlierVersionSerializer(
        many=True, help_text="The learner's other versions, newest first, with released grades."
    )


class SubmissionInSerializer(serializers.Serializer):
    text = StrictCharField(
        trim_whitespace=False,
        validators=[not_blank(_("The essay is empty."))],
        help_text=f"The essay: some text, at most {ESSAY_MAX_WORDS} words.",
    )


class SubmissionOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    word_count = serializers.IntegerField()
    flagged = serializers.BooleanField()
    notice = serializers.CharField(
        allow_blank=True,
        help_text="A note for the learner (e.g. graded without an AI suggestion), or empty.",
    )


class ReleasedCriterionSerializer(serializers.Serializer):
    name = serializers.CharField()
    score = serializers.CharField()
    min = serializers.CharField()
    max = serializers.CharField()
    comment = serializers.CharField(allow_blank=True)
    evidence = serializers.ListField(child=serializers.CharField())


class ReleasedGradeSerializer(serializers.Serializer):
    status = serializers.CharField()
    released_at = serializers.DateTimeField(allow_null=True)
    total = serializers.CharField(allow_null=True)
    max_total = serializers.CharField(allow_null=True)
    criteria = ReleasedCriterionSerializer(many=True)
    strengths = serializers.ListField(child=serializers.CharField())
    next_steps = serializers.ListField(child=serializers.CharField())


class VersionGradeSerializer(ReleasedGradeSerializer):
    """One submitted version of the essay and the grade released for it, if any."""

    number = serializers.IntegerField()
    submission_id = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    is_current = serializers.BooleanField()
    word_count = serializers.IntegerField()


class GradeSerializer(ReleasedGradeSerializer):
    """The current version's grade, and every version with its grade (newest first): a
    resubmission never hides a grade already released."""

    versions = VersionGradeSerializer(many=True)


class CriterionDecisionInSerializer(serializers.Serializer):
    score = StrictDecimalField(
        max_digits=6,
        decimal_places=2,
        help_text="Within the criterion's range, on its step (the rubric says which).",
    )
    reason = StrictCharField(required=False, allow_blank=True, default="")
    comment = StrictCharField(required=False, allow_blank=True, allow_null=True, default=None)


class CriterionDecisionOutSerializer(serializers.Serializer):
    criterion_id = serializers.IntegerField()
    score = serializers.DecimalField(max_digits=6, decimal_places=2)
    review_status = serializers.CharField()


class AgreementRowSerializer(serializers.Serializer):
    name = serializers.CharField()
    # The stubs see Field.source here (hence the ignore); DRF takes declared fields off the class.
    source = serializers.CharField()  # type: ignore[assignment]
    n = serializers.IntegerField()
    qwk = serializers.FloatField(allow_null=True)
    exact = serializers.FloatField(allow_null=True)
    adjacent = serializers.FloatField(allow_null=True)
    smd = serializers.FloatField(allow_null=True)


class OverallAgreementSerializer(serializers.Serializer):
    """Totals of one source against the final grades."""

    # The stubs see Field.source here (hence the ignore); DRF takes declared fields off the class.
    source = serializers.CharField()  # type: ignore[assignment]
    n = serializers.IntegerField()
    smd = serializers.FloatField(allow_null=True)


class GroupFairnessSerializer(serializers.Serializer):
    """One source's SMD for the learners of one value of one group column."""

    # The stubs see Field.source here (hence the ignore); DRF takes declared fields off the class.
    source = serializers.CharField()  # type: ignore[assignment]
    group = serializers.CharField()
    value = serializers.CharField()
    n = serializers.IntegerField()
    smd = serializers.FloatField(allow_null=True)
    required = serializers.BooleanField(  # type: ignore[assignment]  # Field.required, as source
        help_text="Enough learners for the check to count."
    )
    meets = serializers.BooleanField(allow_null=True)


class AgreementSerializer(serializers.Serializer):
    final_count = serializers.IntegerField()
    rows = AgreementRowSerializer(many=True)
    overall = OverallAgreementSerializer(many=True)
    groups = GroupFairnessSerializer(many=True)
    has_group_data = serializers.BooleanField()
