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
    ("payload", "status", "body"),
    [
        ({"username": "alice", "password": "wrong"}, 401, {"detail": "Unable to log in with provided credentials."}),
        ({"username": "nobody", "password": "x"}, 401, {"detail": "Unable to log in with provided credentials."}),
        ({"username": "alice"}, 400, {"password": ["This field is required."]}),
    ],
)
def test_token_refused_for_bad_credentials(anon_api, user, payload, status, body):
    """Well-formed credentials that do not log in are a 401 (like a bad token); a missing field a 400."""
    response = anon_api.post("/api/auth/token/", payload, format="json")
    assert response.status_code == status and response.json() == body
    if status == 401:
        assert response["WWW-Authenticate"] == "Token"


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
