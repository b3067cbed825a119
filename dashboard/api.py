from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.schema import ERROR_SCHEMA

from . import selectors, services
from .selectors import WINDOWS, dashboard_get_cached, window_parse
from .serializers import ProfileSerializer, ProfileStartSerializer


class DashboardApi(APIView):
    """Staff only: reply rates, latency percentiles, error/interrupt/stop rates, tokens and cost
    per model, tool usage, open streams, workers, database size and top users over a window
    (``1h`` is computed for every request, ``24h`` reused for 10 s, ``7d`` for 30 s), and today's
    daily quotas whatever the window (``quotas``: top users and those at or over a limit)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[OpenApiParameter("window", str, enum=list(WINDOWS), default="1h", description="The time window.")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response(dashboard_get_cached(window=window_parse(request.query_params.get("window"))))


_CONFLICT = OpenApiResponse(
    ERROR_SCHEMA,
    description="`profiling_busy` (a recording runs), `ptrace_denied` (py-spy may not read the process: what to "
    "grant is in `detail`), `profiler_unavailable` (no py-spy).",
)


class ProfileListApi(generics.GenericAPIView):
    """Staff only: py-spy recordings of this server's processes, newest first; POST starts one."""

    permission_classes = [IsAdminUser]
    serializer_class = ProfileStartSerializer

    @extend_schema(responses=ProfileSerializer(many=True))
    def get(self, request: Request) -> Response:
        services.profile_expire_stale()
        page = self.paginate_queryset(selectors.profile_list())
        return self.get_paginated_response(ProfileSerializer(page, many=True).data)

    @extend_schema(request=ProfileStartSerializer, responses={202: ProfileSerializer, 409: _CONFLICT})
    def post(self, request: Request) -> Response:
        data = ProfileStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = services.profile_start(**data.validated_data, requested_by=request.user)
        return Response(ProfileSerializer(profile).data, status=status.HTTP_202_ACCEPTED)


class ProfileDetailApi(APIView):
    """Staff only: one recording's metadata (its file: ``data/``)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=ProfileSerializer)
    def get(self, request: Request, profile_id: str) -> Response:
        return Response(ProfileSerializer(selectors.profile_get(profile_id=profile_id)).data)


class _AnyAccept(BaseContentNegotiation):
    """The file is what it is (SVG or JSON) whatever the client accepts; errors are JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ProfileDataApi(APIView):
    """Staff only: the recording as a download: the flame graph (``image/svg+xml``) or the speedscope
    JSON (``application/json``); 409 ``profile_not_ready`` while it records or when it failed."""

    permission_classes = [IsAdminUser]
    content_negotiation_class = _AnyAccept

    @extend_schema(
        responses={
            (200, "image/svg+xml"): OpenApiTypes.BINARY,
            (200, "application/json"): OpenApiTypes.OBJECT,
            409: OpenApiResponse(ERROR_SCHEMA, description="`profile_not_ready`: still recording, or failed."),
        }
    )
    def get(self, request: Request, profile_id: str) -> FileResponse:
        profile, path = selectors.profile_file_get(profile_id=profile_id)
        response = FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"profile-{profile.pk}.{profile.extension}",
            content_type=profile.content_type,
        )
        # The flame graph carries its own script: opened directly, it may run none (no inline script is
        # allowed by the site's policy anyway) and nothing may frame or sniff it.
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        response["X-Content-Type-Options"] = "nosniff"
        return response
