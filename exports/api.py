from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .formats import FORMATS
from .models import ImportJob
from .selectors import import_job_list
from .services import (
    ExportRequest,
    export_all_stream,
    export_request_parse,
    export_thread_stream,
    import_job_get,
    import_job_payload,
    import_upload,
)

SCHEMA_URL = "/static/schema/chat-export-v1.json"
_EXPORT_PARAMETERS = [
    OpenApiParameter("format", str, enum=list(FORMATS), description="Default json."),
    OpenApiParameter(
        "branches",
        str,
        enum=["active", "all", ""],
        description="Default (absent or empty) all for json/csv, active for md/html.",
    ),
    OpenApiParameter("archive", str, enum=["zip"], description="A ZIP: one file per thread plus attachment files."),
    OpenApiParameter("attachments", str, enum=["inline"], description="Files as base64 in the JSON document."),
]
_EXPORT_DOC = f"JSON documents follow the schema at [{SCHEMA_URL}]({SCHEMA_URL})."
# A download in the chosen format, or a ZIP of them.
_DOWNLOAD_RESPONSES = {
    (200, media_type): OpenApiTypes.OBJECT if media_type == "application/json" else OpenApiTypes.BINARY
    for media_type in sorted({f.content_type.split(";")[0] for f in FORMATS.values()} | {"application/zip"})
}


def _request(request: Request) -> ExportRequest:
    query = request.query_params
    return export_request_parse(
        format=query.get("format"),
        branches=query.get("branches"),
        archive=query.get("archive"),
        status=query.get("status"),
        since=query.get("since"),
        attachments=query.get("attachments"),
        base_url=request.build_absolute_uri("/"),
    )


# Bytes handed to the event loop at a time when served over ASGI.
ASGI_BATCH_BYTES = 256 * 1024


def _take(iterator: Iterator[bytes]) -> list[bytes]:
    batch: list[bytes] = []
    size = 0
    for part in iterator:
        batch.append(part)
        size += len(part)
        if size >= ASGI_BATCH_BYTES:
            break
    return batch


class ExportResponse(StreamingHttpResponse):
    """A streamed download that stays streamed under ASGI (Daphne).

    Django serves a synchronous iterator over ASGI by reading all of it into a list first, which
    would hold a whole export in memory; this one runs the iterator in the request's sync thread
    (where its database connection lives) a batch of about ASGI_BATCH_BYTES at a time.
    """

    async def __aiter__(self) -> AsyncIterator[bytes]:
        iterator = iter(self.streaming_content)
        take = sync_to_async(_take, thread_sensitive=True)
        while batch := await take(iterator):
            for part in batch:
                yield part


def content_disposition(name: str) -> str:
    """``attachment`` with the file name; a name in another script (a slug of any letters) also
    gets an ASCII ``filename`` for clients that do not read ``filename*`` (RFC 6266)."""
    if name.isascii():
        return f'attachment; filename="{name}"'
    stem, _, extension = name.rpartition(".")
    fallback = f"{slugify(stem) or 'chat'}.{extension}"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def _download(name: str, chunks: Any, request: ExportRequest) -> StreamingHttpResponse:
    content_type = "application/zip" if request.archive else request.format.content_type
    response = ExportResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = content_disposition(name)
    response["X-Content-Type-Options"] = "nosniff"
    return response


class _ExportApi(APIView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ``format`` is our parameter here, not DRF's renderer override: answer JSON errors anyway.
        return super().perform_content_negotiation(request, force=True)


class ExportThreadApi(_ExportApi):
    @extend_schema(
        summary="Download one of your threads",
        description=_EXPORT_DOC,
        parameters=[OpenApiParameter("thread_id", OpenApiTypes.UUID, OpenApiParameter.PATH), *_EXPORT_PARAMETERS],
        responses=_DOWNLOAD_RESPONSES,
    )
    def get(self, request: Request, thread_id: str) -> StreamingHttpResponse:
        export = _request(request)
        name, chunks = export_thread_stream(user=request.user, thread_id=thread_id, request=export)
        return _download(name, chunks, export)


class ExportAllApi(_ExportApi):
    @extend_schema(
        summary="Download all your threads, streamed",
        description=_EXPORT_DOC + " Without `archive=zip`, one document holds every thread.",
        parameters=[
            *_EXPORT_PARAMETERS,
            OpenApiParameter("status", str, enum=["active", "archived"]),
            OpenApiParameter(
                "since",
                OpenApiTypes.DATE,
                description="Threads active since this date (YYYY-MM-DD; an ISO 8601 date-time is accepted too).",
            ),
        ],
        responses=_DOWNLOAD_RESPONSES,
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        export = _request(request)
        name, chunks = export_all_stream(user=request.user, request=export)
        return _download(name, chunks, export)


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="Our JSON export, ChatGPT's conversations.json, an Open WebUI export, or a ZIP of one."
    )


class ImportApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Import conversations from a file",
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            201: OpenApiResponse(
                description='{"imported": [{"id", "title", "messages"}], "skipped": [{"index", "title", "reason"}]}'
            ),
            202: OpenApiResponse(
                description='A large file: {"job": {...}} with its progress at /api/import/jobs/{id}/.'
            ),
            400: OpenApiResponse(description="Not JSON, not a known format, a ZIP bomb."),
            413: OpenApiResponse(description="Over MAX_IMPORT_BYTES."),
        },
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        started = import_upload(user=request.user, upload=upload)
        if started.job is not None:
            return Response({"job": import_job_payload(started.job)}, status=status.HTTP_202_ACCEPTED)
        return Response(started.result, status=status.HTTP_201_CREATED)


class ImportJobSerializer(serializers.Serializer):
    """A background import as lists show it (its own URL adds ``imported`` and ``skipped``)."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ImportJob.Status.choices)
    filename = serializers.CharField(allow_blank=True)
    kind = serializers.CharField(allow_blank=True)
    conversations_total = serializers.IntegerField(min_value=0)
    conversations_done = serializers.IntegerField(min_value=0)
    imported_count = serializers.IntegerField(min_value=0)
    skipped_count = serializers.IntegerField(min_value=0)
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ImportJobListApi(generics.GenericAPIView):
    """Your background imports, newest first (paginated), so a job can be found again."""

    serializer_class = ImportJobSerializer

    @extend_schema(summary="Your background imports, newest first", responses=ImportJobSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(import_job_list(user=request.user))
        return self.get_paginated_response([import_job_payload(job, results=False) for job in page])


class ImportJobApi(APIView):
    @extend_schema(
        summary="A background import's progress and result",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: OpenApiResponse(
                description="{id, status, filename, kind, conversations_total, conversations_done, imported_count, "
                "skipped_count, error, created_at, finished_at, imported, skipped}"
            )
        },
    )
    def get(self, request: Request, job_id: str) -> Response:
        return Response(import_job_payload(import_job_get(user=request.user, job_id=job_id)))
