# The message lists' order, (created_at, id), read from one index: pages by cursor are a range
# read, pages by number no longer sort the thread (EXPLAIN showed an external merge sort of a
# 100,000-message thread for ?page=last). The new index is built before the old one goes. And a
# thread's roots from a small partial index (a page holding a first message looks up its siblings:
# EXPLAIN showed every index entry of the thread read to find them).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0005_reply_metrics"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="chatmessage",
            index=models.Index(fields=["thread", "created_at", "id"], name="message_thread_created_id"),
        ),
        migrations.RemoveIndex(model_name="chatmessage", name="message_thread_created"),
        migrations.AddIndex(
            model_name="chatmessage",
            index=models.Index(
                condition=models.Q(parent__isnull=True), fields=["thread"], name="message_thread_roots"
            ),
        ),
    ]
