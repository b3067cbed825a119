from datetime import timedelta

import pytest
from django.utils import timezone

from chatproject.errors import InvalidInput
from threads.models import ChatThread
from threads.services import demo_user_ensure, thread_create, thread_delete, thread_touch, thread_update
from threads.tests.factories import make_thread, make_user

pytestmark = pytest.mark.django_db


def test_thread_create_strips_title_and_defaults():
    thread = thread_create(owner=make_user(), title="  Plans  ")
    assert thread.title == "Plans"
    assert thread.status == ChatThread.Status.ACTIVE
    assert thread.metadata == {}


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"title": "x" * 201}, "title"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": "text"}, "metadata"),
    ],
)
def test_thread_create_rejects_bad_input_naming_the_field(fields, bad_field):
    with pytest.raises(InvalidInput) as error:
        thread_create(owner=make_user(), **fields)
    assert list(error.value.errors) == [bad_field]
    assert ChatThread.objects.count() == 0


def test_thread_update_changes_only_given_fields():
    thread = make_thread(title="Old", metadata={"keep": 1})
    thread_update(thread=thread, status="archived")
    thread.refresh_from_db()
    assert (thread.title, thread.status, thread.metadata) == ("Old", "archived", {"keep": 1})


@pytest.mark.parametrize("status", ["deleted", "bogus", ""])
def test_thread_update_refuses_status_other_than_active_or_archived(status):
    thread = make_thread()
    with pytest.raises(InvalidInput) as error:
        thread_update(thread=thread, status=status)
    assert "status" in error.value.errors
    thread.refresh_from_db()
    assert thread.status == "active"


def test_thread_delete_is_soft():
    thread = make_thread()
    thread_delete(thread=thread)
    assert ChatThread.objects.get(pk=thread.pk).status == "deleted"


def test_thread_touch_bumps_updated_at():
    long_ago = timezone.now() - timedelta(days=3)
    thread = make_thread(updated_at=long_ago)
    thread_touch(thread_id=thread.pk)
    thread.refresh_from_db()
    assert thread.updated_at > long_ago + timedelta(days=2)


def test_demo_user_only_on_an_empty_site():
    demo = demo_user_ensure(username="demo", password="demo-password")
    assert demo is not None and demo.check_password("demo-password")
    assert list(demo.chat_threads.values_list("title", flat=True)) == ["Welcome"]
    assert demo_user_ensure(username="demo2", password="x") is None
