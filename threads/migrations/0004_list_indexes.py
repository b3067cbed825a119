# The thread list's order, (-updated_at, -id), from an index: with a status filter (the id added
# to the old index) and without one (a partial index of the threads not deleted: EXPLAIN showed
# a scan and sort of all of a user's threads for every page).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("threads", "0003_model_instructions"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="chatthread",
            index=models.Index(fields=["owner", "status", "-updated_at", "-id"], name="thread_owner_status_recent_id"),
        ),
        migrations.RemoveIndex(model_name="chatthread", name="thread_owner_status_recent"),
        migrations.AddIndex(
            model_name="chatthread",
            index=models.Index(
                condition=~models.Q(status="deleted"),
                fields=["owner", "-updated_at", "-id"],
                name="thread_owner_visible_recent",
            ),
        ),
    ]
