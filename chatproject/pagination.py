from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=N`` (or ``?page=last``) and ``?page_size=`` from 1 to 200.

    A page size that is not a whole number in range, or either parameter given twice, is a 400
    naming the parameter (DRF's default quietly falls back to the default size); a page past the
    end is a 404 ("Invalid page.").
    """

    page_size_query_param = "page_size"
    max_page_size = 200

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
