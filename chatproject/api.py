"""Account endpoints: obtain an API token, and who am I."""

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.selectors import quota_usage_get
from threads.selectors import preferences_get, preferences_model_name
from threads.serializers import InstructionsField, ModelNameField
from threads.services import preferences_update

from .logins import client_address, login_attempt_check
from .services import api_token_get


class TokenApi(ObtainAuthToken):
    """Exchange a username and password for an API token (the same token on every call)."""

    @extend_schema(
        auth=[],
        request=ObtainAuthToken.serializer_class,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            401: OpenApiResponse(description="Wrong username or password, or an inactive user."),
        },
        examples=[
            OpenApiExample("Log in", request_only=True, value={"username": "demo", "password": "demo-password"}),
            OpenApiExample("Token", response_only=True, value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"}),
            OpenApiExample(
                "Wrong password",
                status_codes=["401"],
                response_only=True,
                value={"detail": "Unable to log in with provided credentials."},
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
        credentials = self.get_serializer(data=request.data)
        if not credentials.is_valid():
            # A missing field is a 400; well-formed credentials that do not log in are a 401, as
            # for a bad token (DRF's own view answers 400 for both).
            if set(credentials.errors) == {"non_field_errors"}:
                raise AuthenticationFailed(credentials.errors["non_field_errors"][0])
            raise ValidationError(credentials.errors)
        return Response({"token": api_token_get(user=credentials.validated_data["user"])})


class QuotaCountSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    limit = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")


class UsageSerializer(serializers.Serializer):
    day_start = serializers.DateTimeField(help_text="The UTC midnight the counts started from.")
    resets_at = serializers.DateTimeField(help_text="The next UTC midnight, when they start again from 0.")
    replies = QuotaCountSerializer(
        help_text="AI replies ended today (any status, regenerations included) plus those in progress."
    )
    tokens = QuotaCountSerializer(help_text="Prompt and completion tokens of the replies ended today.")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    instructions = serializers.CharField(help_text="Your custom instructions, sent to the agent with every request.")
    model = serializers.CharField(help_text="The model your new threads start with.")
    usage = UsageSerializer(help_text="Your daily quota: what you used of it today (UTC) and your limits.")


class MeUpdateSerializer(serializers.Serializer):
    instructions = InstructionsField(help_text="Sent to the agent with every request of yours.")
    model = ModelNameField()


class MeApi(APIView):
    """The signed-in user (clients need the id for the WebSocket URL)."""

    @extend_schema(
        responses=MeSerializer,
        examples=[
            OpenApiExample(
                "Me",
                value={
                    "id": 1,
                    "username": "demo",
                    "instructions": "",
                    "model": "offline",
                    "usage": {
                        "day_start": "2026-12-02T00:00:00Z",
                        "resets_at": "2026-12-03T00:00:00Z",
                        "replies": {"used": 12, "limit": 100},
                        "tokens": {"used": 48210, "limit": None},
                    },
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        me = {"id": request.user.pk, "username": request.user.get_username(), **_preferences(request)}
        usage = quota_usage_get(user_id=request.user.pk)
        return Response(MeSerializer({**me, "usage": usage.as_dict()}).data)

    @extend_schema(
        request=MeUpdateSerializer,
        responses=MeSerializer,
        examples=[OpenApiExample("Instructions", request_only=True, value={"instructions": "Answer in French."})],
    )
    def patch(self, request: Request) -> Response:
        """Set your custom instructions (sent to the agent with every request) and/or default model."""
        data = MeUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        preferences_update(user=request.user, **data.validated_data)
        return self.get(request)


def _preferences(request: Request) -> dict[str, str]:
    preferences = preferences_get(user_id=request.user.pk)
    return {"instructions": preferences.instructions, "model": preferences_model_name(preferences=preferences)}
