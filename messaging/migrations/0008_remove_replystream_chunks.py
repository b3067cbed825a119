"""The JSON list of deltas is gone: ReplyChunk rows hold them (copied by 0007)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0007_reply_chunks"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="replystream",
            name="chunks",
        ),
    ]
