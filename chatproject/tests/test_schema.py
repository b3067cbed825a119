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


def test_every_operation_documents_the_errors_it_can_give(client):
    """Shared errors come from one hook, so endpoints added later are documented too."""
    schema = yaml.safe_load(client.get("/api/schema/").content)
    assert schema["components"]["schemas"]["Error"]["properties"]["code"] == {"type": "string"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = set(operation["responses"])
            assert {"429", "503"} <= responses, (method, path)
            if any(operation.get("security", [])):
                assert {"401", "403"} <= responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if method in ("post", "patch", "put"):
                assert {"400", "413", "415"} <= responses, (method, path)
    token = schema["paths"]["/api/auth/token/"]["post"]
    assert not any(token.get("security", [])) and "403" not in token["responses"]
    page = {p["name"]: p["schema"] for p in schema["paths"]["/api/threads/"]["get"]["parameters"]}
    assert page["page_size"] == {"type": "integer", "minimum": 1, "maximum": 200}
