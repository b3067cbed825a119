"""Account endpoints: obtain an API token, and who am I."""

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from threads.selectors import preferences_get
from threads.services import preferences_update

from . import catalog
from .errors import InvalidInput
from .logins import client_address, login_attempt_check


class TokenApi(ObtainAuthToken):
    """Exchange a username and password for an API token (the same token on every call)."""

    @extend_schema(
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
        return Response({"id": request.user.pk, "username": request.user.get_username(), **_preferences(request)})

    @extend_schema(
        request=inline_serializer(
            "MeUpdate", {"instructions": serializers.CharField(), "model": serializers.CharField()}
        ),
        examples=[OpenApiExample("Instructions", request_only=True, value={"instructions": "Answer in French."})],
    )
    def patch(self, request: Request) -> Response:
        """Set your custom instructions (sent to the agent with every request) and/or default model."""
        if not isinstance(request.data, Mapping):
            raise InvalidInput.field("non_field_errors", "Send a JSON object.")
        data = request.data
        fields = {key: data[key] for key in ("instructions", "model") if key in data}
        preferences_update(user=request.user, **fields)
        return self.get(request)


def _preferences(request: Request) -> dict[str, str]:
    preferences = preferences_get(user_id=request.user.pk)
    return {"instructions": preferences.instructions, "model": preferences.model or catalog.default_spec().name}
