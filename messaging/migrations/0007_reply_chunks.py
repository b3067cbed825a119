"""Reply streams' deltas move from a JSON list on the stream to insert-only ReplyChunk rows.

This migration creates the table and copies every stream's list into it (and counts it in
``chunk_count``); 0008 then drops the list. Two migrations, because PostgreSQL refuses to alter a
table in the transaction that inserted rows referencing it (pending foreign-key trigger events).
Both are reversible: going back rebuilds the lists from the rows.
"""

import django.db.models.deletion
from django.db import migrations, models

BATCH = 1000


def chunks_to_rows(apps, schema_editor):
    ReplyStream = apps.get_model("messaging", "ReplyStream")
    ReplyChunk = apps.get_model("messaging", "ReplyChunk")
    pending: list = []
    streams = ReplyStream.objects.only("id", "chunks").order_by("pk").iterator(chunk_size=200)
    for stream in streams:
        chunks = stream.chunks or []
        if not chunks:
            continue
        pending.extend(ReplyChunk(stream_id=stream.pk, seq=seq, delta=delta) for seq, delta in enumerate(chunks))
        ReplyStream.objects.filter(pk=stream.pk).update(chunk_count=len(chunks))
        if len(pending) >= BATCH:
            ReplyChunk.objects.bulk_create(pending, batch_size=BATCH)
            pending = []
    ReplyChunk.objects.bulk_create(pending, batch_size=BATCH)


def rows_to_chunks(apps, schema_editor):
    ReplyStream = apps.get_model("messaging", "ReplyStream")
    ReplyChunk = apps.get_model("messaging", "ReplyChunk")
    for stream_id in ReplyStream.objects.filter(chunk_count__gt=0).values_list("pk", flat=True).iterator():
        deltas = list(ReplyChunk.objects.filter(stream_id=stream_id).order_by("seq").values_list("delta", flat=True))
        ReplyStream.objects.filter(pk=stream_id).update(chunks=deltas)


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0006_list_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="replystream",
            name="chunk_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.CreateModel(
            name="ReplyChunk",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("seq", models.PositiveIntegerField()),
                ("delta", models.TextField()),
                (
                    "stream",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunk_rows",
                        to="messaging.replystream",
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("stream", "seq"), name="replychunk_stream_seq")],
            },
        ),
        migrations.RunPython(chunks_to_rows, rows_to_chunks),
    ]
