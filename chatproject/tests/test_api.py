import pytest

from threads.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_token_for_good_credentials_is_stable(anon_api, user):
    first = anon_api.post("/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert first.status_code == 200
    again = anon_api.post("/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert first.json()["token"] == again.json()["token"]

    anon_api.credentials(HTTP_AUTHORIZATION=f"Token {first.json()['token']}")
    me = anon_api.get("/api/me/").json()
    assert (me["id"], me["username"]) == (user.pk, "alice")


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"username": "alice", "password": "wrong"}, "non_field_errors"), ({"username": "alice"}, "password")],
)
def test_token_refused_for_bad_credentials(anon_api, user, payload, field):
    response = anon_api.post("/api/auth/token/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_me_needs_authentication(anon_api):
    assert anon_api.get("/api/me/").status_code == 401
    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert anon_api.get("/api/me/").json() == {"detail": "Invalid token."}


def test_me_with_session(client, user):
    client.force_login(user)
    assert client.get("/api/me/").json()["id"] == user.pk


def test_unknown_api_url_is_json_404(api):
    response = api.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
