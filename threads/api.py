from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from chatproject.pagination import CursorOrPagePagination

from .selectors import thread_get, thread_list
from .serializers import ThreadCreateSerializer, ThreadFilterSerializer, ThreadSerializer, ThreadUpdateSerializer
from .services import thread_create, thread_delete, thread_update

THREAD_ID = OpenApiParameter("thread_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
THREAD_EXAMPLE = OpenApiExample(
    "A thread",
    response_only=True,
    value={
        "id": "3f1c2a5e-8d4b-4e0a-9a47-2b6d1c0e9f11",
        "title": "Trip planning",
        "summary": "",
        "status": "active",
        "metadata": {"color": "blue"},
        "created_at": "2026-11-24T09:30:00Z",
        "updated_at": "2026-11-24T09:42:10Z",
    },
)
VALIDATION_EXAMPLE = OpenApiExample(
    "Invalid field", status_codes=["400"], response_only=True, value={"metadata": ["Must be a JSON object."]}
)


class ThreadListApi(generics.GenericAPIView):
    """Your threads, most recently active first; deleted threads are never listed.

    Pages by ``?page=`` or by ``?cursor=`` (keyset on ``(updated_at, id)``, newest first).
    """

    serializer_class = ThreadCreateSerializer
    pagination_class = CursorOrPagePagination

    def get_queryset(self):
        # A plain dict: DRF reads a blank form value as "not given", so `?status=` would pass.
        filters = ThreadFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return thread_list(user=self.request.user, **filters.validated_data)

    @extend_schema(
        parameters=[ThreadFilterSerializer], responses=ThreadSerializer(many=True), examples=[THREAD_EXAMPLE]
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ThreadSerializer(page, many=True).data)

    @extend_schema(
        request=ThreadCreateSerializer,
        responses={201: ThreadSerializer},
        examples=[
            OpenApiExample(
                "Create", request_only=True, value={"title": "Trip planning", "metadata": {"color": "blue"}}
            ),
            THREAD_EXAMPLE,
            VALIDATION_EXAMPLE,
        ],
    )
    def post(self, request: Request) -> Response:
        data = ThreadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        thread = thread_create(owner=request.user, **data.validated_data)
        return Response(ThreadSerializer(thread).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[THREAD_ID])
class ThreadDetailApi(generics.GenericAPIView):
    """One of your threads. Another user's thread, a deleted one or a malformed id answers 404."""

    serializer_class = ThreadUpdateSerializer

    def get_object(self):
        return thread_get(user=self.request.user, thread_id=self.kwargs["thread_id"])

    @extend_schema(responses=ThreadSerializer, examples=[THREAD_EXAMPLE])
    def get(self, request: Request, thread_id: str) -> Response:
        return Response(ThreadSerializer(self.get_object()).data)

    @extend_schema(
        request=ThreadUpdateSerializer,
        responses=ThreadSerializer,
        examples=[
            OpenApiExample("Rename", request_only=True, value={"title": "Trip to Lisbon"}),
            OpenApiExample("Archive", request_only=True, value={"status": "archived"}),
            THREAD_EXAMPLE,
            VALIDATION_EXAMPLE,
        ],
    )
    def patch(self, request: Request, thread_id: str) -> Response:
        thread = self.get_object()
        data = ThreadUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        thread = thread_update(thread=thread, **data.validated_data)
        return Response(ThreadSerializer(thread).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, thread_id: str) -> Response:
        thread_delete(thread=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
