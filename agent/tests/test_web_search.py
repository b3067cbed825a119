import pytest

from agent.tools import ToolContext
from agent.tools.web_search import make_web_search

from .local_http import LocalServer, Reply, SilentServer, closed_port_url

DUCKDUCKGO_ANSWER = {
    "Heading": "Lisbon",
    "AbstractText": "Lisbon is the capital of Portugal.",
    "AbstractURL": "https://en.wikipedia.org/wiki/Lisbon",
    "RelatedTopics": [
        {"Text": "Porto - second city of Portugal", "FirstURL": "https://duckduckgo.com/Porto"},
        {"Name": "Nearby", "Topics": [{"Text": "Sintra - a town", "FirstURL": "https://duckduckgo.com/Sintra"}]},
    ],
}


@pytest.fixture
def web_search():
    return make_web_search(ToolContext())


def test_off_unless_the_operator_turns_it_on(web_search, settings):
    settings.WEB_SEARCH_PROVIDER, settings.SERPAPI_API_KEY = "off", ""
    assert web_search(query="lisbon").startswith("Web search is unavailable: it is turned off on this server")


def test_duckduckgo_instant_answers(web_search, settings):
    with LocalServer(lambda request: Reply.json(DUCKDUCKGO_ANSWER)) as server:
        settings.WEB_SEARCH_PROVIDER, settings.DUCKDUCKGO_URL = "duckduckgo", server.url + "/"
        observation = web_search(query="lisbon")
    assert observation == (
        "Web results for 'lisbon' (duckduckgo):\n"
        "1. Lisbon: Lisbon is the capital of Portugal. https://en.wikipedia.org/wiki/Lisbon\n"
        "2. Porto: Porto - second city of Portugal https://duckduckgo.com/Porto\n"
        "3. Sintra: Sintra - a town https://duckduckgo.com/Sintra"
    )
    (request,) = server.requests
    assert request.query == {"q": "lisbon", "format": "json", "no_html": "1", "skip_disambig": "1"}


def test_serpapi_when_its_key_is_set(web_search, settings):
    results = {"organic_results": [{"title": "Lisbon", "snippet": "Capital.", "link": "https://example.org/l"}]}
    with LocalServer(lambda request: Reply.json(results)) as server:
        settings.SERPAPI_API_KEY, settings.SERPAPI_URL = "serp-key", server.url + "/search.json"
        observation = web_search(query="lisbon")
    assert observation == "Web results for 'lisbon' (serpapi):\n1. Lisbon: Capital. https://example.org/l"
    assert server.requests[0].query["api_key"] == "serp-key" and server.requests[0].path == "/search.json"


def test_no_results(web_search, settings):
    with LocalServer(lambda request: Reply.json({"RelatedTopics": []})) as server:
        settings.WEB_SEARCH_PROVIDER, settings.DUCKDUCKGO_URL = "duckduckgo", server.url
        assert web_search(query="zzzz") == "No web results for 'zzzz'."


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(status=500, body=b"oops"), "Web search is unavailable: duckduckgo HTTP 500."),
        (Reply(body=b"<html>not json</html>"), "Web search is unavailable: duckduckgo not JSON."),
        (Reply.json(["a", "list"]), "Web search is unavailable: duckduckgo answered in an unexpected shape."),
        (Reply.json({"RelatedTopics": [7]}), "Web search is unavailable: duckduckgo answered in an unexpected shape."),
    ],
)
def test_provider_failures_are_observations(web_search, settings, reply, said):
    with LocalServer(lambda request: reply) as server:
        settings.WEB_SEARCH_PROVIDER, settings.DUCKDUCKGO_URL = "duckduckgo", server.url
        assert web_search(query="lisbon") == said


def test_serpapi_errors_are_observations(web_search, settings):
    with LocalServer(lambda request: Reply.json({"error": "Invalid API key."})) as server:
        settings.SERPAPI_API_KEY, settings.SERPAPI_URL = "bad", server.url
        assert web_search(query="lisbon") == "Web search is unavailable: serpapi Invalid API key.."


def test_without_network_it_says_unavailable(web_search, settings):
    settings.WEB_SEARCH_PROVIDER = "duckduckgo"
    settings.DUCKDUCKGO_URL = closed_port_url()
    assert web_search(query="lisbon").startswith("Web search is unavailable: duckduckgo unreachable (")
    settings.DUCKDUCKGO_URL = "http://search.invalid/"  # a name that never resolves
    assert web_search(query="lisbon").startswith("Web search is unavailable: duckduckgo unreachable (")


def test_a_hanging_provider_times_out(web_search, settings):
    with SilentServer() as server:
        settings.WEB_SEARCH_PROVIDER, settings.DUCKDUCKGO_URL, settings.WEB_TIMEOUT_SECONDS = (
            "duckduckgo",
            server.url,
            1,
        )
        assert web_search(query="lisbon") == "Web search is unavailable: duckduckgo unreachable (timed out)."


def test_an_empty_query_is_refused(web_search):
    assert web_search(query="  ") == "Web search error: no query."
