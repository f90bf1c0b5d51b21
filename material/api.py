"""REST endpoints of course material: search, list, upload, status."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from learners.http import UserApiRequest
from learners.selectors import course_for_member, course_for_teacher
from material import serializers
from material.models import Material
from material.retrieval import chunks_search
from material.services import material_upload


class CourseSearchView(APIView):
    @extend_schema(
        parameters=[serializers.SearchQuerySerializer],
        responses=serializers.SearchResultSerializer(many=True),
    )
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """The passages of the course's material that best match ``q``, best first."""
        course = course_for_member(user=request.user, course_id=course_id)
        incoming = serializers.SearchQuerySerializer(data=request.query_params)
        incoming.is_valid(raise_exception=True)
        results = chunks_search(
            course=course,
            user=request.user,
            query=incoming.validated_data["q"],
            k=incoming.validated_data["k"],
            mode=incoming.validated_data["mode"],
            highlight=True,
        )
        return Response(serializers.SearchResultSerializer(results, many=True).data)


class MaterialListView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses=serializers.MaterialSerializer(many=True))
    def get(self, request: UserApiRequest, course_id: int) -> Response:
        """The course's material with its ingestion status."""
        course = course_for_member(user=request.user, course_id=course_id)
        materials = Material.objects.for_course(course)
        return Response(serializers.MaterialSerializer(materials, many=True).data)

    @extend_schema(
        request={"multipart/form-data": serializers.MaterialUploadSerializer},
        responses={201: serializers.MaterialSerializer(many=True)},
    )
    def post(self, request: UserApiRequest, course_id: int) -> Response:
        """Upload files (field ``files``, repeated); each is queued for ingestion, or
        failed at once when it is empty or too large. Teachers only."""
        course = course_for_teacher(user=request.user, course_id=course_id)
        incoming = serializers.MaterialUploadSerializer(
            data={"files": request.FILES.getlist("files")}
        )
        incoming.is_valid(raise_exception=True)
        materials = [
            material_upload(course=course, file=file, uploaded_by=request.user)
            for file in incoming.validated_data["files"]
        ]
        return Response(
            serializers.MaterialSerializer(materials, many=True).data,
            status=status.HTTP_201_CREATED,
        )


class MaterialDetailView(APIView):
    @extend_schema(responses=serializers.MaterialSerializer)
    def get(self, request: UserApiRequest, course_id: int, material_id: int) -> Response:
        """One material's status and progress."""
        course = course_for_member(user=request.user, course_id=course_id)
        material = get_object_or_404(Material.objects.for_course(course), pk=material_id)
        return Response(serializers.MaterialSerializer(material).data)
