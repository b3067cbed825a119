"""Exports (streamed documents and archives) and imports (parsed files stored through the other
apps' services). Reads go through ``exports.selectors``; nothing here writes another app's rows
directly."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import slugify

from agent.memory import memory_add_many
from chatproject.errors import OUTAGE_ERRORS, DomainError, InvalidInput, NotFound
from messaging.services import message_import_bulk
from threads.selectors import parse_uuid
from threads.services import thread_import

from .document import attachment_path, thread_document
from .formats import ExportContext, ExportFormat, format_get
from .importers import Conversation, ImportFile
from .models import ImportJob, ImportJobItem
from .selectors import ThreadExport, export_thread_get, export_threads_iter
from .signals import export_completed, import_completed
from .zipstream import ZipStream

logger = logging.getLogger(__name__)

BRANCHES = ("active", "all")
ARCHIVES = ("zip",)
STATUSES = ("active", "archived")


def _choice(name: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise InvalidInput.field(name, f'"{value}" is not accepted: use one of {", ".join(accepted)}.')
    return value


@dataclass
class ExportRequest:
    """An export's options, checked: every bad value is InvalidInput naming its parameter."""

    format: ExportFormat
    branches: str
    archive: str | None = None
    status: str | None = None
    since: datetime | None = None
    inline: bool = False
    # Where links to attachments point (see ExportContext.base_url).
    base_url: str = ""
    counts: dict[str, int] = field(default_factory=lambda: {"threads": 0, "messages": 0})


def export_request_parse(
    *,
    format: str | None = None,
    branches: str | None = None,
    archive: str | None = None,
    status: str | None = None,
    since: str | None = None,
    attachments: str | None = None,
    base_url: str = "",
) -> ExportRequest:
    """Check the query parameters of an export: None means the default, and so does an empty
    ``branches`` (the menus' "Default" choice); any other value not accepted is InvalidInput."""
    writer = format_get("json" if format is None else format)
    return ExportRequest(
        format=writer,
        branches=_choice("branches", branches, BRANCHES) if branches else writer.default_branches,
        archive=None if archive is None else _choice("archive", archive, ARCHIVES),
        status=None if status is None else _choice("status", status, STATUSES),
        since=None if since is None else _since(since),
        inline=attachments is not None and _choice("attachments", attachments, ("inline",)) == "inline",
        base_url=base_url.rstrip("/"),
    )


def _since(value: str) -> datetime:
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.combine(day, time.min)
    except ValueError:  # well formed, but no such day or time (2026-02-30)
        parsed = None
    if parsed is None:
        raise InvalidInput.field("since", f'"{value}" is not a date: use YYYY-MM-DD or an ISO 8601 date-time.')
    return timezone.make_aware(parsed, timezone.get_current_timezone()) if timezone.is_naive(parsed) else parsed


def export_filename(*, title: str, thread_id: Any = None, extension: str, allow_unicode: bool = False) -> str:
    """A safe download name from a title: letters (ASCII only unless ``allow_unicode``), digits
    and dashes, never empty."""
    stem = slugify(title, allow_unicode=allow_unicode)[:60] or "chat"
    if thread_id is not None:
        stem = f"{stem}-{str(thread_id)[:8]}"
    return f"{stem}.{extension}"


def _document(item: ThreadExport, request: ExportRequest, *, in_archive: bool) -> dict[str, Any]:
    request.counts["threads"] += 1
    request.counts["messages"] += len(item.messages)
    return thread_document(
        item.thread,
        item.messages,
        item.attachments,
        active_leaf=item.active_leaf,
        inline=request.inline,
        in_archive=in_archive,
    )


def _whole(writer: ExportFormat, context: ExportContext, documents: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    yield from writer.begin(context)
    for index, document in enumerate(documents):
        yield from writer.thread(document, context, first=index == 0)
    yield from writer.end(context)


def _archive(items: Iterator[ThreadExport], request: ExportRequest, context: ExportContext) -> Iterator[bytes]:
    archive = ZipStream()
    writer = request.format
    used: set[str] = set()
    for item in items:
        document = _document(item, request, in_archive=True)
        name = export_filename(title=item.thread.title, thread_id=item.thread.pk, extension=writer.extension)
        used.add(name)
        yield from archive.add(f"threads/{name}", _whole(writer, context, iter([document])))
        for message in item.messages:
            for attachment in item.attachments.get(message.pk, []):
                yield from archive.add(attachment_path(attachment), _file_chunks(attachment))
    yield from archive.close()


def _file_chunks(attachment: Any) -> Iterator[bytes]:
    try:
        with attachment.file.open("rb") as handle:
            yield from iter(lambda: handle.read(64 * 1024), b"")
    except OSError:
        # The row outlived its file (removed by hand): the archive says so instead of failing.
        logger.warning("attachment %s has no file; left out of the export", attachment.pk)


def _completed(
    user: User, request: ExportRequest, chunks: Iterator[bytes], *, scope: str, thread_id: Any = None
) -> Iterator[bytes]:
    """Pass the bytes on, then send ``export_completed`` once the last one is out."""
    yield from chunks
    export_completed.send(
        sender=ExportRequest,
        user=user,
        export={
            "scope": scope,
            "thread_id": None if thread_id is None else str(thread_id),
            "format": request.format.name,
            "branches": request.branches,
            "archive": request.archive is not None,
            **request.counts,
        },
    )


def export_thread_stream(
    *, user: User, thread_id: str | uuid.UUID, request: ExportRequest
) -> tuple[str, Iterator[bytes]]:
    """One thread of the user's as ``(file name, bytes)``; NotFound for anyone else's. The name
    keeps the title's letters of any script (the API adds an ASCII fallback).

    The thread is read before this returns (so a missing one fails before a response starts);
    ``export_completed`` is sent after the last byte.
    """
    item = export_thread_get(user=user, thread_id=thread_id, branches=request.branches)
    context = ExportContext(
        branches=request.branches, exported_at=timezone.now().isoformat(), base_url=request.base_url
    )
    writer = request.format
    if request.archive:
        name = export_filename(title=item.thread.title, thread_id=item.thread.pk, extension="zip", allow_unicode=True)
        chunks = _archive(iter([item]), request, ExportContext(**{**context.__dict__, "in_archive": True}))
    else:
        name = export_filename(
            title=item.thread.title, thread_id=item.thread.pk, extension=writer.extension, allow_unicode=True
        )
        chunks = _whole(writer, context, iter([_document(item, request, in_archive=False)]))
    return name, _completed(user, request, chunks, scope="thread", thread_id=item.thread.pk)


def export_all_stream(
    *, user: User, request: ExportRequest, on_thread: Callable[[], None] | None = None
) -> tuple[str, Iterator[bytes]]:
    """Every visible thread of the user's (``status``, ``since``) as ``(file name, bytes)``, streamed:
    memory holds one batch of threads whatever their number. ``on_thread`` is called after each
    thread (progress bars). ``export_completed`` is sent after the last byte."""
    context = ExportContext(
        branches=request.branches, exported_at=timezone.now().isoformat(), base_url=request.base_url
    )
    items = export_threads_iter(user=user, branches=request.branches, status=request.status, since=request.since)

    def counted(items: Iterator[ThreadExport]) -> Iterator[ThreadExport]:
        for item in items:
            yield item
            if on_thread:
                on_thread()

    stamp = date.today().isoformat()
    if request.archive:
        name = f"chat-export-{stamp}-{request.format.extension}.zip"
        context.in_archive = True
        chunks = _archive(counted(items), request, context)
    else:
        name = f"chat-export-{stamp}.{request.format.extension}"
        documents = (_document(item, request, in_archive=False) for item in counted(items))
        chunks = _whole(request.format, context, documents)
    return name, _completed(user, request, chunks, scope="all")


# --- Imports -------------------------------------------------------------------------------------


class ImportJobLog:
    """What a background job has done, one ImportJobItem a conversation: ``claim`` is called first
    in the conversation's transaction (so its row commits with the conversation, and a second run
    of the job cannot store it again), ``skipped`` when one cannot be imported."""

    class AlreadyDone(Exception):
        """Another run of the job stored this conversation (the row was there)."""

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        # What an earlier run (its worker died) finished: skipped without being read again.
        self.done = set(ImportJobItem.objects.filter(job=job).values_list("index", flat=True))

    def claim(self, index: int, title: str) -> ImportJobItem:
        try:
            with transaction.atomic():
                return ImportJobItem.objects.create(job=self.job, index=index, title=title)
        except IntegrityError:
            raise ImportJobLog.AlreadyDone from None

    def skipped(self, index: int, title: str, reason: str) -> None:
        ImportJobItem.objects.bulk_create(
            [ImportJobItem(job=self.job, index=index, title=title, reason=reason)], ignore_conflicts=True
        )

    def result(self) -> dict[str, list[dict[str, Any]]]:
        """Every conversation of the job, this run's and earlier ones', in file order."""
        items = ImportJobItem.objects.filter(job=self.job).order_by("index")
        return {
            "imported": [
                {"id": str(i.thread_id), "title": i.title, "messages": i.messages} for i in items if i.thread_id
            ],
            "skipped": [{"index": i.index, "title": i.title, "reason": i.reason} for i in items if not i.thread_id],
        }


def _import_one(
    *, user: User, conversation: Conversation, log: ImportJobLog | None = None, index: int = 0
) -> dict[str, Any]:
    """One conversation in its own transaction: all of it is stored, or none of it."""
    with transaction.atomic():
        item = log.claim(index, conversation.title) if log is not None else None
        thread = thread_import(
            owner=user,
            title=conversation.title,
            summary=conversation.summary,
            status=conversation.status,
            metadata=conversation.metadata,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
            model=conversation.model,
            instructions=conversation.instructions,
        )
        stored = message_import_bulk(
            thread=thread,
            owner=user,
            messages=conversation.messages,
            active_leaf_key=conversation.active_leaf_key,
        )
        memory_add_many(stored.values())
        if item is not None:
            item.thread_id, item.title, item.messages = thread.pk, thread.title, len(stored)
            item.save(update_fields=["thread_id", "title", "messages"])
    return {"id": str(thread.pk), "title": thread.title, "messages": len(stored)}


def threads_import(
    *,
    user: User,
    file: ImportFile,
    on_progress: Callable[[int], None] | None = None,
    log: ImportJobLog | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Import every conversation of a checked file for ``user``; ``{"imported", "skipped"}``.

    Each conversation is stored in its own transaction: one that cannot be (bad data, over the
    upload quota) is listed in ``skipped`` with its index, title and reason, and the others are
    stored. Imported messages start no agent reply and send no per-message signal or broadcast;
    users' messages are added to the agent's memory. An outage (database down) stops the import
    and propagates: what was imported before it stays. ``on_progress`` gets the count done.
    With a job's ``log``, each conversation is recorded there and those it already holds are
    passed over; the result is then the whole job's (earlier runs' too). ``import_completed`` is
    sent at the end with the result (the import's one event: its messages send none).
    """
    imported: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for done, entry in enumerate(file.entries(), start=1):
        reason = None
        if log is not None and entry.index in log.done:
            pass
        elif entry.conversation is None:
            reason = entry.error
        else:
            try:
                imported.append(_import_one(user=user, conversation=entry.conversation, log=log, index=entry.index))
            except OUTAGE_ERRORS:
                raise
            except ImportJobLog.AlreadyDone:
                pass
            except DomainError as exc:
                reason = exc.message
            except Exception as exc:
                logger.exception("conversation %s of an import could not be stored", entry.index)
                reason = f"{type(exc).__name__}"
        if reason is not None:
            skipped.append({"index": entry.index, "title": entry.title, "reason": reason})
            if log is not None:
                log.skipped(entry.index, entry.title, reason)
        if on_progress:
            on_progress(done)
    result = log.result() if log is not None else {"imported": imported, "skipped": skipped}
    import_completed.send(sender=ImportFile, user=user, result={"kind": file.kind, **result})
    return result


def import_file_open(*, stream: IO[bytes], size: int) -> ImportFile:
    """Check an uploaded file (size, ZIP bomb, JSON, format): InvalidInput or PayloadTooLarge
    naming what is wrong; nothing is stored either way."""
    return ImportFile.open(stream, size=size)


def import_runs_in_background(file: ImportFile) -> bool:
    return file.messages > settings.IMPORT_BACKGROUND_MESSAGES or file.kind == "chat-export-archive"


@dataclass
class ImportStarted:
    """What an upload became: a finished import's result, or a background job."""

    result: dict[str, list[dict[str, Any]]] | None = None
    job: ImportJob | None = None


def import_upload(*, user: User, upload: File[bytes] | None) -> ImportStarted:
    """Check an uploaded file and import it now, or queue it as a job when it is large.

    InvalidInput (no file, not JSON, unknown format, ZIP bomb) or PayloadTooLarge: nothing stored.
    """
    if upload is None:
        raise InvalidInput.field("file", "No file was submitted.")
    file = import_file_open(stream=upload, size=upload.size)
    if import_runs_in_background(file):
        job = import_job_create(user=user, file=file, filename=upload.name or "", stream=upload)
        return ImportStarted(job=job)
    return ImportStarted(result=threads_import(user=user, file=file))


def import_job_create(*, user: User, file: ImportFile, filename: str, stream: IO[bytes]) -> ImportJob:
    """Keep the file and queue its import as a task (after commit); the job shows its progress."""
    stream.seek(0)
    job = ImportJob(owner=user, filename=filename[:255], kind=file.kind, conversations_total=file.conversations)
    job.file.save(f"{job.id}.upload", File(stream), save=False)
    job.save()
    from .tasks import import_run

    import_run.delay_on_commit(str(job.id))
    return job


def import_job_run(*, job_id: Any, on_progress: Callable[[int], None] | None = None) -> ImportJob | None:
    """Run an import job to its end; None when it is gone or has ended already.

    A job found running is one whose worker died (the task, acknowledged late, was given to
    another): it goes on from where it stopped, passing over the conversations stored before
    (ImportJobItem rows, written with each conversation), so nothing is lost or stored twice.
    ``on_progress`` gets the count of conversations done (an operator's progress bar).
    """
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
    ).update(status=ImportJob.Status.RUNNING)
    if not claimed:
        return None
    job = ImportJob.objects.select_related("owner").get(pk=job_id)

    def progress(done: int) -> None:
        ImportJob.objects.filter(pk=job.pk).update(conversations_done=done)
        if on_progress:
            on_progress(done)

    log = ImportJobLog(job)
    try:
        with job.file.open("rb") as stream:
            file = ImportFile.open(stream, size=job.file.size)
            result = threads_import(user=job.owner, file=file, on_progress=progress, log=log)
    except DomainError as exc:
        job.status, job.error = ImportJob.Status.FAILED, exc.message
    except Exception as exc:
        logger.exception("import job %s failed", job.pk)
        job.status, job.error = ImportJob.Status.FAILED, f"The import failed ({type(exc).__name__})."
    else:
        job.status, job.result = ImportJob.Status.DONE, result
        job.conversations_done = len(result["imported"]) + len(result["skipped"])
    job.finished_at = timezone.now()
    job.file.delete(save=False)
    job.save(update_fields=["status", "error", "result", "conversations_done", "finished_at", "file"])
    return job


def import_job_get(*, user: User | AnonymousUser, job_id: Any) -> ImportJob:
    """The user's import job, or NotFound (another user's too)."""
    pk = parse_uuid(job_id)
    job = ImportJob.objects.filter(pk=pk, owner=user).first() if pk and user.is_authenticated else None
    if job is None:
        raise NotFound("Import not found.")
    return job


def import_job_payload(job: ImportJob, *, results: bool = True) -> dict[str, Any]:
    """A job as the API and the page show it; ``results=False`` (a list of jobs) leaves out the
    lists of imported and skipped conversations (their counts stay)."""
    imported, skipped = job.result.get("imported", []), job.result.get("skipped", [])
    payload: dict[str, Any] = {
        "id": str(job.id),
        "status": job.status,
        "filename": job.filename,
        "kind": job.kind,
        "conversations_total": job.conversations_total,
        "conversations_done": job.conversations_done,
        "imported_count": len(imported),
        "skipped_count": len(skipped),
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
    if results:
        payload.update(imported=imported, skipped=skipped)
    return payload
