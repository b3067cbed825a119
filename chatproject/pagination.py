from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=N`` (or ``?page=last``) and ``?page_size=`` up to 200."""

    page_size_query_param = "page_size"
    max_page_size = 200
