"""The project-wide table: running totals for GET /metrics (see ``chatproject.totals``)."""

from __future__ import annotations

from django.db import models


class MetricTotal(models.Model):
    """One running total that every process adds to in the database: a counter's value for one
    set of labels, or one bucket or the sum of a histogram's (``chatproject.totals.SERIES``).

    Replies end in Celery workers, Daphne processes and commands alike, on any host: a row here
    is the one place they all count, in the transaction that records what they count, and a
    scrape reads the whole table (a few rows per model, tool and status) in one query.
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100)
    # The labels as compact JSON with sorted keys (one spelling per label set: the unique key).
    labels = models.CharField(max_length=1000)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metrictotal_series")]

    def __str__(self) -> str:
        return f"{self.name}{self.labels} = {self.value}"
