from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import WINDOWS, dashboard_get_cached, window_parse


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
