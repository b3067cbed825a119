"""Account endpoints: obtain an API token, and who am I."""

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .logins import client_address, login_attempt_check


class TokenApi(ObtainAuthToken):
    """Exchange a username and password for an API token (the same token on every call)."""

    @extend_schema(
        auth=[],
        request=ObtainAuthToken.serializer_class,
        responses=inline_serializer("Token", {"token": serializers.CharField()}),
        examples=[
            OpenApiExample("Log in", request_only=True, value={"username": "demo", "password": "demo-password"}),
            OpenApiExample("Token", response_only=True, value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"}),
            OpenApiExample(
                "Wrong password",
                status_codes=["400"],
                response_only=True,
                value={"non_field_errors": ["Unable to log in with provided credentials."]},
            ),
            OpenApiExample(
                "Locked out",
                status_codes=["429"],
                response_only=True,
                value={"detail": "Too many failed log-in attempts: try again in 42 s.", "code": "login_throttled"},
            ),
        ],
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        """Answers 429 while the username or the client address has too many recent failures."""
        username = request.data.get("username") if isinstance(request.data, Mapping) else None
        login_attempt_check(username=username, address=client_address(request))
        return super().post(request, *args, **kwargs)


class MeApi(APIView):
    """The signed-in user (clients need the id for the WebSocket URL)."""

    @extend_schema(
        responses=inline_serializer("Me", {"id": serializers.IntegerField(), "username": serializers.CharField()}),
        examples=[OpenApiExample("Me", value={"id": 1, "username": "demo"})],
    )
    def get(self, request: Request) -> Response:
        return Response({"id": request.user.pk, "username": request.user.get_username()})
