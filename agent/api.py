"""The agent's endpoints: which models users may choose."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject import catalog


class ModelListApi(APIView):
    """The models a thread may use, by name (never their provider strings, addresses or keys)."""

    @extend_schema(
        responses=inline_serializer(
            "Models",
            {"models": serializers.ListField(child=serializers.CharField()), "default": serializers.CharField()},
        ),
        examples=[
            OpenApiExample("Models", value={"models": ["offline", "gpt-4o-mini", "llama"], "default": "offline"})
        ],
    )
    def get(self, request: Request) -> Response:
        return Response({"models": list(catalog.offered()), "default": catalog.default_spec().name})
