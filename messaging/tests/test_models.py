import pytest
from django.db import IntegrityError

from messaging.models import ChatAttachment, ChatMessage
from threads.tests.factories import make_thread

pytestmark = pytest.mark.django_db


def test_database_refuses_an_unknown_role():
    thread = make_thread()
    with pytest.raises(IntegrityError):
        ChatMessage.objects.create(thread=thread, role="robot", content="hi")


def test_database_refuses_an_ai_message_with_a_sender():
    thread = make_thread()
    with pytest.raises(IntegrityError):
        ChatMessage.objects.create(thread=thread, role="ai", sender=thread.owner, content="hi")


def test_deleting_a_thread_row_cascades_to_messages_and_attachments():
    from messaging.tests.factories import make_attachment, make_message

    thread = make_thread()
    attachment = make_attachment(make_message(thread))
    thread.delete()
    assert ChatMessage.objects.count() == 0
    assert not ChatAttachment.objects.filter(pk=attachment.pk).exists()
