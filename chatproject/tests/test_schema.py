import pytest
import yaml

pytestmark = pytest.mark.django_db


def test_schema_lists_every_endpoint_with_examples(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert {
        "/api/auth/token/",
        "/api/me/",
        "/api/models/",
        "/api/threads/",
        "/api/threads/{thread_id}/",
        "/api/threads/{thread_id}/messages/",
        "/api/attachments/{attachment_id}/download/",
    } <= set(schema["paths"])
    create = schema["paths"]["/api/threads/"]["post"]
    assert "examples" in create["requestBody"]["content"]["application/json"]
    assert "examples" in create["responses"]["201"]["content"]["application/json"]


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_local_assets_only(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
