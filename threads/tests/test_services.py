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


def nested(depth: int) -> dict:
    """A metadata object ``depth`` levels deep: {"a": {"a": ... {}}}."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "metadata",
    [
        nested(9),  # one level past METADATA_MAX_DEPTH (8)
        {"list": [[[[[[[[1]]]]]]]]},  # lists count as levels too
        {"pad": "x" * 16 * 1024},  # one field past METADATA_MAX_BYTES with its key and braces
        {"emoji": "😀" * 4096},  # 4 bytes each as UTF-8: over the byte limit at a quarter the characters
        nested(5000),  # deeper than json.dumps can recurse: measured without recursion
    ],
    ids=["too deep", "too deep in lists", "too big", "too big in bytes", "absurdly deep"],
)
def test_metadata_over_its_limits_is_refused_naming_it_and_nothing_is_stored(metadata):
    owner = make_user()
    with pytest.raises(InvalidInput) as error:
        thread_create(owner=owner, metadata=metadata)
    assert list(error.value.errors) == ["metadata"]
    assert ChatThread.objects.count() == 0

    thread = make_thread(owner, metadata={"keep": 1})
    with pytest.raises(InvalidInput) as error:
        thread_update(thread=thread, metadata=metadata)
    assert list(error.value.errors) == ["metadata"]
    thread.refresh_from_db()
    assert thread.metadata == {"keep": 1}


def test_metadata_at_its_limits_is_accepted(settings):
    at_size = {"pad": ""}
    at_size["pad"] = "x" * (settings.METADATA_MAX_BYTES - len('{"pad":""}'))
    assert thread_create(owner=make_user(), metadata=nested(8)).metadata == nested(8)
    assert thread_create(owner=make_user(), metadata=at_size).metadata == at_size


def test_metadata_that_is_not_json_is_refused():
    with pytest.raises(InvalidInput) as error:
        thread_create(owner=make_user(), metadata={"x": float("nan")})
    assert "NaN" in error.value.errors["metadata"][0]


def test_summary_over_its_limit_is_refused_and_nothing_changes(settings):
    settings.THREAD_SUMMARY_MAX_CHARS = 1000
    thread = make_thread(title="Same")
    thread_update(thread=thread, summary="s" * 1000)
    with pytest.raises(InvalidInput) as error:
        thread_update(thread=thread, title="Changed", summary="s" * 1001)
    assert "1001 given" in error.value.errors["summary"][0]
    thread.refresh_from_db()
    assert (thread.title, thread.summary) == ("Same", "s" * 1000)
