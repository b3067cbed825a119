import uuid

import pytest

from chatproject.errors import NotFound
from threads.selectors import thread_get, thread_list
from threads.tests.factories import make_thread, make_user

pytestmark = pytest.mark.django_db


def test_thread_list_is_scoped_filtered_and_recent_first():
    alice, bob = make_user(), make_user()
    older = make_thread(alice, title="Trip to Lisbon")
    newer = make_thread(alice, title="Groceries")
    archived = make_thread(alice, title="Old trip", status="archived")
    make_thread(alice, title="Gone", status="deleted")
    make_thread(bob, title="Bob's trip")

    assert list(thread_list(user=alice)) == [archived, newer, older]
    assert list(thread_list(user=alice, status="active")) == [newer, older]
    assert list(thread_list(user=alice, search="TRIP")) == [archived, older]


@pytest.mark.parametrize("thread_id", ["not-a-uuid", str(uuid.uuid4()), "", "1"])
def test_thread_get_unknown_or_malformed_is_not_found(thread_id):
    with pytest.raises(NotFound):
        thread_get(user=make_user(), thread_id=thread_id)


def test_thread_get_hides_other_users_and_deleted_threads():
    alice, bob = make_user(), make_user()
    thread = make_thread(alice)
    assert thread_get(user=alice, thread_id=str(thread.pk)) == thread
    with pytest.raises(NotFound):
        thread_get(user=bob, thread_id=thread.pk)
    deleted = make_thread(alice, status="deleted")
    with pytest.raises(NotFound):
        thread_get(user=alice, thread_id=deleted.pk)
