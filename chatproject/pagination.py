import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Page
from django.core.paginator import Paginator as DjangoPaginator
from django.db import models
from django.db.models import Q, QuerySet
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


class _Paginator(DjangoPaginator):
    """Django's, except that a page in the second half of a queryset in a total order (its last
    field the id) is read from the end (the order reversed, then the rows): ``?page=last`` of a
    long thread is then an index read of one page, not an OFFSET past every row before it. The
    COUNT stays."""

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = min(bottom + self.per_page, self.count)
        rows = self.object_list
        # Only a total order reads the same both ways (ties would land on either side of a page).
        order = [str(name).lstrip("-") for name in rows.query.order_by] if isinstance(rows, QuerySet) else []
        if not (order and order[-1] in ("id", "pk") and bottom > self.count // 2):
            return super().page(number)
        page = list(rows.reverse()[self.count - top : self.count - bottom])
        page.reverse()
        return self._get_page(page, number, self)


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=N`` (or ``?page=last``) and ``?page_size=`` from 1 to 200.

    A page size that is not a whole number in range, or either parameter given twice, is a 400
    naming the parameter (DRF's default quietly falls back to the default size); a page past the
    end is a 404 ("Invalid page.").
    """

    page_size_query_param = "page_size"
    max_page_size = 200
    django_paginator_class = _Paginator

    def get_page_size(self, request: Request) -> int | None:
        for name in (self.page_query_param, self.page_size_query_param):
            if len(request.query_params.getlist(name)) > 1:
                raise ValidationError({name: ["Give this parameter once."]})
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdecimal() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def get_page_number(self, request: Request, paginator: Any) -> int | str:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if raw not in self.last_page_strings and not (raw.isdecimal() and int(raw) >= 1):
            # DRF reads a blank page as the first; the schema (and a client) calls that invalid.
            raise NotFound(self.invalid_page_message.format(page_number=raw, message="not a page number"))
        return paginator.num_pages if raw in self.last_page_strings else raw

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "Page number from 1, or `last`.",
                "schema": {"type": "string", "pattern": "^([1-9][0-9]{0,8}|last)$"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, 1 to {self.max_page_size} (default {self.page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class CursorOrPagePagination(PageNumberPagination):
    """Page numbers as before, or keyset pages with ``?cursor=``: for lists that grow long.

    A cursor is the position of a row in the queryset's own order (its ``order_by`` fields, all in
    one direction, the last one unique: ``("created_at", "id")``, ``("-updated_at", "-id")``) and
    a direction, as opaque base64url text. A page is one indexed range read (``WHERE key > cursor
    ORDER BY key LIMIT size + 1``): no ``COUNT``, no ``OFFSET``, so page 2,000 costs what page 1
    does, and rows added or removed meanwhile never shift a page (nothing is seen twice or
    skipped). ``first`` and ``last`` start at either end; the response is ``{"next", "previous",
    "results"}`` with links that carry the next cursors (no ``count``: that would be the scan
    cursors avoid).

    Anything else in ``cursor`` is a 400 naming it, as is a cursor with ``page``, or on a list
    that cannot be read by key (a queryset the view built otherwise, such as a tree path).
    """

    cursor_query_param = "cursor"
    invalid_cursor_message = (
        "Not a cursor of this list: use first, last, or a cursor from a page's next or previous link."
    )
    not_keyset_message = "This list is paged by page number only."

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self.cursor_mode = self.cursor_query_param in request.query_params
        if not self.cursor_mode:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        size = self.get_page_size(request) or 50
        raw = request.query_params.getlist(self.cursor_query_param)
        if len(raw) > 1:
            raise ValidationError({self.cursor_query_param: ["Give this parameter once."]})
        if self.page_query_param in request.query_params:
            raise ValidationError({self.cursor_query_param: ["Give either cursor or page, not both."]})
        if not isinstance(queryset, QuerySet):
            raise ValidationError({self.cursor_query_param: [self.not_keyset_message]})
        fields, descending = self._ordering(queryset)
        forwards, key = self._decode(raw[0], fields, queryset.model)
        if key is not None:
            queryset = queryset.filter(_beyond(fields, key, greater=forwards != descending))
        if not forwards:
            queryset = queryset.reverse()
        rows = list(queryset[: size + 1])
        more = len(rows) > size
        rows = rows[: len(rows) - more]
        if not forwards:
            rows.reverse()
        first_key = self._key(rows[0], fields) if rows else key
        last_key = self._key(rows[-1], fields) if rows else key
        # Going forwards there is something before when we started past the start (and the other
        # way round); the way we went, there is more when the extra row came back.
        self.next_token = self._encode(True, last_key) if (more if forwards else key is not None) else None
        self.previous_token = self._encode(False, first_key) if (key is not None if forwards else more) else None
        return rows

    def get_paginated_response(self, data: Any) -> Response:
        if not self.cursor_mode:
            return super().get_paginated_response(data)
        links = {"next": self._link(self.next_token), "previous": self._link(self.previous_token)}
        return Response({**links, "results": data})

    def _link(self, token: str | None) -> str | None:
        if token is None:
            return None
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, token)

    @staticmethod
    def _ordering(queryset: QuerySet[Any]) -> tuple[list[str], bool]:
        order = [str(name) for name in queryset.query.order_by]
        directions = {name.startswith("-") for name in order}
        fields = [name.lstrip("-") for name in order]
        if len(directions) != 1 or fields[-1] not in ("id", "pk"):
            raise ImproperlyConfigured(f"A cursor needs one direction and a unique last field, not {order}")
        return fields, directions.pop()

    @staticmethod
    def _key(row: Any, fields: list[str]) -> list[Any]:
        return [getattr(row, "pk" if name == "id" else name) for name in fields]

    @staticmethod
    def _encode(forwards: bool, key: list[Any] | None) -> str:
        text = json.dumps(["n" if forwards else "p", *[_encode_value(value) for value in key or []]])
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def _decode(self, raw: str, fields: list[str], model: Any) -> tuple[bool, list[Any] | None]:
        if raw in ("first", "last"):
            return raw == "first", None
        invalid = ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        try:
            if not raw or len(raw) > 400:
                raise ValueError
            decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
            if not isinstance(decoded, list) or len(decoded) != len(fields) + 1 or decoded[0] not in ("n", "p"):
                raise ValueError
            key = []
            for name, value in zip(fields, decoded[1:], strict=True):
                field = model._meta.pk if name in ("id", "pk") else model._meta.get_field(name)
                if not isinstance(value, str):  # we write every key as text (times, ids)
                    raise ValueError
                parsed = field.to_python(value)
                # A time without its offset would be read in some other zone: not one we gave out.
                if isinstance(field, models.DateTimeField) and (
                    not isinstance(parsed, datetime) or parsed.tzinfo is None
                ):
                    raise ValueError
                key.append(parsed)
        except (ValueError, TypeError, binascii.Error, DjangoValidationError, UnicodeDecodeError):
            raise invalid from None
        return decoded[0] == "n", key

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        described = super().get_paginated_response_schema(schema)
        described["required"] = ["next", "previous", "results"]
        described["properties"]["count"]["description"] = "Page-number pages only (not with `cursor`)."
        return described

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": (
                    "Keyset pages instead of page numbers: `first` or `last` to start at either end, then the "
                    "cursor in a page's `next` or `previous` link (opaque). Not with `page`; no `count`."
                ),
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,400}$"},
            },
        ]


def _beyond(fields: list[str], key: list[Any], *, greater: bool) -> Q:
    """Rows past ``key`` in the order of ``fields``: ``(a, b) > (x, y)`` written as ``a >= x AND
    (a > x OR (a = x AND b > y))``, whose first part an index on ``(a, b)`` reads as a range."""
    op = "gt" if greater else "lt"
    condition = Q(**{f"{fields[-1]}__{op}": key[-1]})
    for name, value in zip(reversed(fields[:-1]), reversed(key[:-1]), strict=True):
        condition = Q(**{f"{name}__{op}": value}) | (Q(**{name: value}) & condition)
    if len(fields) > 1:
        condition &= Q(**{f"{fields[0]}__{op}e": key[0]})
    return condition
