from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.errors import InvalidInput
from chatproject.pagination import CursorOrPagePagination
from threads.selectors import thread_get
from threads.serializers import ThreadSerializer

from .models import ForkMode
from .selectors import attachment_get, message_get, message_list, message_path_pages, thread_tree
from .serializers import (
    ForkSerializer,
    MessageCreateSerializer,
    MessageSerializer,
    RegenerateSerializer,
    StreamSerializer,
    TreeSerializer,
)
from .services import ACTIVE_LEAF, message_regenerate, message_send, stream_stop, thread_fork

MESSAGE_EXAMPLE = OpenApiExample(
    "A user message",
    response_only=True,
    value={
        "id": "8c0e7a52-51f4-4c8e-b7a4-0d3f2a9e6b21",
        "thread": "3f1c2a5e-8d4b-4e0a-9a47-2b6d1c0e9f11",
        "sender": 1,
        "role": "user",
        "type": "text",
        "content": "What is 15% of 240?",
        "metadata": {},
        "parent": None,
        "children_count": 1,
        "sibling_ids": ["8c0e7a52-51f4-4c8e-b7a4-0d3f2a9e6b21"],
        "client_id": None,
        "created_at": "2026-11-24T09:42:10Z",
        "attachments": [],
    },
)


@extend_schema(parameters=[OpenApiParameter("thread_id", OpenApiTypes.UUID, OpenApiParameter.PATH)])
class MessageListApi(generics.GenericAPIView):
    """Messages of one of your threads, oldest first (``?page=last`` for the newest page).

    Every message of every branch, in time order; ``?path=active`` only the active branch from its
    root, ``?leaf=<message id>`` only the path from the root down to that message. The whole list
    also pages by ``?cursor=`` (keyset on ``(created_at, id)``): the way to read a long thread.
    """

    serializer_class = MessageCreateSerializer
    pagination_class = CursorOrPagePagination

    def get_queryset(self):
        thread = thread_get(user=self.request.user, thread_id=self.kwargs["thread_id"])
        leaf_id = self.request.query_params.get("leaf")
        if leaf_id is not None:
            return message_path_pages(thread=thread, leaf=message_get(thread=thread, message_id=leaf_id))
        path = self.request.query_params.get("path")
        if path is not None:
            if path != "active":
                raise InvalidInput.field("path", 'The only path is "active".')
            return message_path_pages(thread=thread)
        return message_list(thread=thread)

    @extend_schema(
        parameters=[
            OpenApiParameter("path", str, enum=["active"], description="Only the active branch, root first."),
            OpenApiParameter("leaf", OpenApiTypes.UUID, description="Only the path from the root to this message."),
        ],
        responses=MessageSerializer(many=True),
        examples=[MESSAGE_EXAMPLE],
    )
    def get(self, request: Request, thread_id: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(
        request=MessageCreateSerializer,
        responses={201: MessageSerializer, 200: MessageSerializer},
        examples=[
            OpenApiExample("Send", request_only=True, value={"content": "What is 15% of 240?"}),
            MESSAGE_EXAMPLE,
            OpenApiExample(
                "Too long",
                status_codes=["400"],
                response_only=True,
                value={"content": ["Ensure this field has no more than 32000 characters (32001 given)."]},
            ),
        ],
    )
    def post(self, request: Request, thread_id: str) -> Response:
        """Store your message; the agent's reply follows over the WebSocket.

        Sending the same ``client_id`` again answers 200 with the stored message instead of 201.
        """
        thread = thread_get(user=request.user, thread_id=thread_id)
        data = MessageCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message, created = message_send(
            thread=thread,
            sender=request.user,
            content=data.validated_data["content"],
            metadata=data.validated_data.get("metadata"),
            parent_id=data.validated_data.get("parent", ACTIVE_LEAF),
            client_id=data.validated_data.get("client_id"),
        )
        return Response(
            MessageSerializer(message).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


@extend_schema(
    parameters=[
        OpenApiParameter("thread_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
        OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
    ]
)
class MessageRegenerateApi(APIView):
    """Answer a user message again (or, given an AI message, the message it answers).

    202: a new AI reply to ``reply_to`` streams over the WebSocket like any reply (``stream_start``
    with its ``attempt``) and becomes the active branch when it ends. The same ``client_id`` again
    answers 200 and asks nothing more.
    """

    @extend_schema(
        request=RegenerateSerializer,
        responses={202: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
        examples=[
            OpenApiExample(
                "Accepted",
                response_only=True,
                status_codes=["202"],
                value={"reply_to": "8c0e7a52-51f4-4c8e-b7a4-0d3f2a9e6b21", "attempt": 1},
            )
        ],
    )
    def post(self, request: Request, thread_id: str, message_id: str) -> Response:
        thread = thread_get(user=request.user, thread_id=thread_id)
        data = RegenerateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message, created = message_regenerate(
            thread=thread, sender=request.user, message_id=message_id, client_id=data.validated_data.get("client_id")
        )
        return Response(
            {"reply_to": str(message.pk), "attempt": message.reply_attempt},
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )


@extend_schema(parameters=[OpenApiParameter("stream_id", OpenApiTypes.UUID, OpenApiParameter.PATH)])
class StreamStopApi(APIView):
    """Stop a reply while it streams: it ends as ``stopped`` with the text sent so far kept.

    Stopping a reply that has ended already answers its end as it is. Another user's stream: 404.
    """

    @extend_schema(request=None, responses=StreamSerializer)
    def post(self, request: Request, stream_id: str) -> Response:
        return Response(StreamSerializer(stream_stop(user=request.user, stream_id=stream_id)).data)


@extend_schema(parameters=[OpenApiParameter("thread_id", OpenApiTypes.UUID, OpenApiParameter.PATH)])
class ThreadForkApi(APIView):
    """Copy part of one of your threads' tree into a new thread ("<title> (fork)").

    ``path``: the root-to-message path; ``path_with_branches``: that path and the siblings along
    it; ``subtree``: the message and everything under it, re-rooted at it. 201 with the new thread.
    """

    @extend_schema(
        request=ForkSerializer,
        responses={201: ThreadSerializer},
        examples=[
            OpenApiExample(
                "Fork",
                request_only=True,
                value={"message_id": "8c0e7a52-51f4-4c8e-b7a4-0d3f2a9e6b21", "mode": ForkMode.PATH},
            )
        ],
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = thread_get(user=request.user, thread_id=thread_id)
        data = ForkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fork = thread_fork(
            thread=thread, message_id=data.validated_data["message_id"], mode=data.validated_data["mode"]
        )
        return Response(ThreadSerializer(fork).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[OpenApiParameter("thread_id", OpenApiTypes.UUID, OpenApiParameter.PATH)])
class VisualizationApi(APIView):
    """The whole tree of one of your threads as flat nodes for ``d3.stratify()`` (two queries)."""

    @extend_schema(responses=TreeSerializer)
    def get(self, request: Request, thread_id: str) -> Response:
        return Response(thread_tree(thread=thread_get(user=request.user, thread_id=thread_id)))


class AttachmentDownloadApi(APIView):
    """The stored file of an attachment in one of your threads."""

    @extend_schema(
        parameters=[OpenApiParameter("attachment_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, attachment_id: str) -> FileResponse:
        attachment = attachment_get(user=request.user, attachment_id=attachment_id)
        return FileResponse(
            attachment.file.open("rb"),
            as_attachment=True,
            filename=attachment.filename,
            content_type=attachment.file_type,
        )
