import pytest

pytestmark = pytest.mark.django_db

LIST = "/api/threads/"


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"page_size": "0"}, 400, "page_size"),
        ({"page_size": "201"}, 400, "page_size"),
        ({"page_size": "ten"}, 400, "page_size"),
        ({"page_size": ""}, 400, "page_size"),
        ("page_size=5&page_size=6", 400, "page_size"),
        ("page=1&page=2", 400, "page"),
        ({"page": ""}, 404, "detail"),
        ({"page": "0"}, 404, "detail"),
        ({"page": "2"}, 404, "detail"),
    ],
)
def test_bad_paging_parameters_are_refused_by_name(api, query, status, field):
    url = f"{LIST}?{query}" if isinstance(query, str) else LIST
    response = api.get(url, query if isinstance(query, dict) else None)
    assert response.status_code == status and field in response.json()


def test_page_size_and_last_page_are_honoured(api, user):
    from threads.tests.factories import make_thread

    for n in range(5):
        make_thread(user, title=f"t{n}")
    page = api.get(LIST, {"page_size": 2, "page": "last"}).json()
    assert page["count"] == 5 and len(page["results"]) == 1
