"""REST endpoints of the learner model: the same rules and services as its pages."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_fields import StrictBooleanField, StrictCharField, StrictIntegerField, not_blank
from learners.http import UserApiRequest
from learners.selectors import course_for_member, course_for_teacher
from learning import practice as practice_services
from learning.models import PracticeQuestion
from learning.progress import Estimate, progress_class, progress_concepts
from learning.review import reviews_due


class EstimateSerializer(serializers.Serializer):
    probability = serializers.FloatField(allow_null=True)
    attempts = serializers.IntegerField()
    enough_data = serializers.BooleanField()
    band = serializers.ChoiceField(choices=["unknown", "needs-work", "developing", "mastered"])


class ConceptMasterySerializer(serializers.Serializer):
    concept_id = serializers.IntegerField(source="concept.pk")
    concept = serializers.CharField(source="concept.name")
    estimate = EstimateSerializer()


class QuestionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    concept_id = serializers.IntegerField()
    concept = serializers.CharField(source="concept.name")
    kind = serializers.ChoiceField(choices=PracticeQuestion.Kind.choices)
    prompt = serializers.CharField()


class AnswerInSerializer(serializers.Serializer):
    question = StrictIntegerField()
    answer = StrictCharField(
        trim_whitespace=False,
        max_length=practice_services.MAX_ANSWER_CHARS,
        validators=[not_blank(_("Write an answer first."))],
    )
    review = StrictBooleanField(default=False)


class AnswerOutSerializer(serializers.Serializer):
    correct = serializers.BooleanField()
    expected = serializers.CharField()
    missing = serializers.ListField(child=serializers.CharField())
    explanation = serializers.CharField()
    mastery = EstimateSerializer()
    next_review = serializers.DateTimeField()


class DueReviewSerializer(serializers.Serializer):
    question = QuestionSerializer()
    due = serializers.DateTimeField()


class ClassRowSerializer(serializers.Serializer):
    student_id = serializers.IntegerField(source="student.pk")
    student = serializers.CharField(source="student.name")
    average = EstimateSerializer()
    cells = EstimateSerializer(many=True)


class ClassProgressSerializer(serializers.Serializer):
    concepts = serializers.ListField(child=serializers.CharField())
    students = ClassRowSerializer(many=True)


class MyMasteryView(APIView):
    @extend_schema(responses=ConceptMasterySerializer(many=True))
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """The requesting learner's estimate for every concept of the course."""
        course = course_for_member(user=request.user, course_id=course_id)
        rows = progress_concepts(learner=request.user, course=course)
        return Response(ConceptMasterySerializer(rows, many=True).data)


class NextQuestionView(APIView):
    @extend_schema(responses={200: QuestionSerializer, 204: None})
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """The next question to practise; 204 when there is nothing to practise now."""
        course = course_for_member(user=request.user, course_id=course_id)
        question = practice_services.practice_next(learner=request.user, course=course)
        if question is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(QuestionSerializer(question).data)


class AnswerCreateView(APIView):
    @extend_schema(request=AnswerInSerializer, responses={201: AnswerOutSerializer})
    def post(self, request: UserApiRequest, course_id: int) -> Response:
        """Answer a question: checked, recorded as evidence, scheduled for review."""
        course = course_for_member(user=request.user, course_id=course_id)
        incoming = AnswerInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        question = get_object_or_404(
            PracticeQuestion.objects.approved().select_related("concept__course"),
            pk=incoming.validated_data["question"],
            concept__course=course,
        )
        result = practice_services.practice_answer(
            learner=request.user,
            question=question,
            answer=incoming.validated_data["answer"],
            is_review=incoming.validated_data["review"],
        )
        mastery = result.mastery
        data = {
            "correct": result.check.correct,
            "expected": result.check.expected,
            "missing": result.check.missing,
            "explanation": question.explanation,
            "mastery": Estimate(mastery.probability, mastery.attempts, mastery.enough_data),
            "next_review": result.review.due,
        }
        return Response(AnswerOutSerializer(data).data, status=status.HTTP_201_CREATED)


class DueReviewsView(APIView):
    @extend_schema(responses=DueReviewSerializer(many=True))
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """The requesting learner's questions due for review by the end of today."""
        course = course_for_member(user=request.user, course_id=course_id)
        cards = reviews_due(learner=request.user, course=course)
        return Response(DueReviewSerializer(cards, many=True).data)


class ClassProgressView(APIView):
    @extend_schema(responses=ClassProgressSerializer)
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """Concepts × students of the course, struggling students first (teachers)."""
        course = course_for_teacher(user=request.user, course_id=course_id)
        progress = progress_class(course=course)
        data = {"concepts": [c.name for c in progress.concepts], "students": progress.students}
        return Response(ClassProgressSerializer(data).data)
