"""REST endpoints of essay grading, one view per operation; the same rules as the pages:
a student reaches only their own essay and grade, a teacher only their courses' essays."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from ai.budget import GRADED_WITHOUT_AI, ai_budget_reached
from grading import reviews, selectors, serializers, submissions
from grading.models import Review
from learners.http import UserApiRequest
from learners.selectors import user_can_teach


class ReviewQueueView(APIView):
    @extend_schema(responses=serializers.QueueItemSerializer(many=True))
    def get(self, request: UserApiRequest, course_id: int, assignment_id: int) -> Response:
        """The essays to review, most uncertain first."""
        assignment = selectors.assignment_for_teacher(
            user=request.user, course_id=course_id, assignment_id=assignment_id
        )
        queue = selectors.review_queue(assignment=assignment)
        return Response(serializers.QueueItemSerializer(queue, many=True).data)


class SubmissionCreateView(APIView):
    @extend_schema(
        request=serializers.SubmissionInSerializer,
        responses={201: serializers.SubmissionOutSerializer},
    )
    def post(self, request: UserApiRequest, course_id: int, assignment_id: int) -> Response:
        """Submit an essay as text; it becomes the current submission."""
        assignment = selectors.assignment_for_member(
            user=request.user, course_id=course_id, assignment_id=assignment_id
        )
        if user_can_teach(user=request.user, course=assignment.course):
            raise Http404
        incoming = serializers.SubmissionInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        submission = submissions.submission_submit(
            assignment=assignment, learner=request.user, text=incoming.validated_data["text"]
        )
        over_budget = ai_budget_reached(user=request.user, course=assignment.course)
        data = {
            "id": submission.pk,
            "submitted_at": submission.submitted_at,
            "word_count": submissions.word_count(submission.text),
            "flagged": submission.review.flagged,
            "notice": GRADED_WITHOUT_AI if over_budget else "",
        }
        return Response(serializers.SubmissionOutSerializer(data).data, status=201)


class MyGradeView(APIView):
    @extend_schema(responses=serializers.GradeSerializer)
    def get(self, request: UserApiRequest, course_id: int, assignment_id: int) -> Response:
        """The requesting learner's released grade (only what was released)."""
        assignment = selectors.assignment_for_member(
            user=request.user, course_id=course_id, assignment_id=assignment_id
        )
        submission = selectors.submission_current(assignment=assignment, learner=request.user)
        review = getattr(submission, "review", None) if submission else None
        if review is None:
            raise Http404
        versions = selectors.submission_versions(assignment=assignment, learner=request.user)
        data = {
            **_released_grade(review.released, review.released_at),
            "versions": [
                {
                    **_released_grade(version.released, version.released_at),
                    "number": version.number,
                    "submission_id": version.submission.pk,
                    "submitted_at": version.submission.submitted_at,
                    "is_current": version.is_current,
                    "word_count": submissions.word_count(version.submission.text),
                }
                for version in versions
            ],
        }
        return Response(serializers.GradeSerializer(data).data)


def _released_grade(released: dict | None, released_at) -> dict:
    released = released or {}
    return {
        "status": "released" if released else "not_released",
        "released_at": released_at,
        "total": released.get("total"),
        "max_total": released.get("max_total"),
        "criteria": released.get("criteria", []),
        "strengths": released.get("strengths", []),
        "next_steps": released.get("next_steps", []),
    }


class CriterionDecisionView(APIView):
    @extend_schema(
        request=serializers.CriterionDecisionInSerializer,
        responses=serializers.CriterionDecisionOutSerializer,
    )
    def post(
        self,
        request: UserApiRequest,
        course_id: int,
        assignment_id: int,
        submission_id: int,
        criterion_id: int,
    ) -> Response:
        """Approve, edit or override one criterion's score (a reason when it differs)."""
        assignment = selectors.assignment_for_teacher(
            user=request.user, course_id=course_id, assignment_id=assignment_id
        )
        review = selectors.review_for_teacher(assignment=assignment, submission_id=submission_id)
        criterion = get_object_or_404(assignment.criteria.all(), pk=criterion_id)
        incoming = serializers.CriterionDecisionInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        score = reviews.criterion_score_set(
            submission=review.submission,
            criterion=criterion,
            score=incoming.validated_data["score"],
            reason=incoming.validated_data["reason"],
            comment=incoming.validated_data["comment"],
            actor=request.user,
        )
        state = Review.objects.values_list("status", flat=True).get(pk=review.pk)
        data = {"criterion_id": criterion.pk, "score": score.score, "review_status": state}
        return Response(serializers.CriterionDecisionOutSerializer(data).data)


class AgreementView(APIView):
    @extend_schema(responses=serializers.AgreementSerializer)
    def get(self, request: UserApiRequest, course_id: int, assignment_id: int) -> Response:
        """Agreement of AI proposals with final grades, and fairness across groups."""
        assignment = selectors.assignment_for_teacher(
            user=request.user, course_id=course_id, assignment_id=assignment_id
        )
        report = selectors.agreement_report(assignment=assignment)
        return Response(serializers.AgreementSerializer(report).data)
