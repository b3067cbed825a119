import pytest

from messaging.services import stream_append, stream_start
from messaging.tests.factories import make_attachment, make_message
from threads.tests.factories import make_thread, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client


def test_admin_pages_render_with_inlines_and_filters(staff_client):
    thread = make_thread(title="Admin visible")
    message = make_message(thread, "inline message")
    attachment = make_attachment(message, "inline.txt")

    listing = staff_client.get("/admin/threads/chatthread/", {"status__exact": "active", "q": "Admin"})
    assert listing.status_code == 200 and b"Admin visible" in listing.content

    change = staff_client.get(f"/admin/threads/chatthread/{thread.pk}/change/")
    assert change.status_code == 200 and b"inline message" in change.content

    message_page = staff_client.get(f"/admin/messaging/chatmessage/{message.pk}/change/")
    assert message_page.status_code == 200 and b"inline.txt" in message_page.content

    assert staff_client.get("/admin/messaging/chatmessage/", {"q": "inline"}).status_code == 200
    assert staff_client.get(f"/admin/messaging/chatattachment/{attachment.pk}/change/").status_code == 200


def test_reply_streams_are_listed_read_only(staff_client):
    stream = stream_start(reply_to=make_message(make_thread(), "question"))
    stream_append(stream=stream, delta="partial")
    listing = staff_client.get("/admin/messaging/replystream/", {"status__exact": "streaming"})
    assert listing.status_code == 200 and str(stream.pk).encode() in listing.content
    detail = staff_client.get(f"/admin/messaging/replystream/{stream.pk}/change/")
    assert detail.status_code == 200 and b"partial" in detail.content
    assert staff_client.get("/admin/messaging/replystream/add/").status_code == 403
