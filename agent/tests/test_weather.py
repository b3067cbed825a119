import pytest

from agent.tools import ToolContext
from agent.tools.weather import make_weather

from .local_http import LocalServer, Reply, SilentServer, closed_port_url

LISBON = {
    "name": "Lisbon",
    "sys": {"country": "PT"},
    "main": {"temp": 18.04, "feels_like": 17.5, "humidity": 72},
    "wind": {"speed": 4.1},
    "weather": [{"description": "light rain"}],
}


@pytest.fixture
def weather():
    return make_weather(ToolContext())


@pytest.fixture
def openweather(settings):
    def serve(reply: Reply) -> LocalServer:
        server = LocalServer(lambda request: reply)
        settings.OPENWEATHER_API_KEY, settings.OPENWEATHER_URL = "weather-key", server.url + "/data/2.5/weather"
        return server

    return serve


def test_without_a_key_it_says_so(weather, settings):
    settings.OPENWEATHER_API_KEY = ""
    assert weather(location="Lisbon") == (
        "Weather is unavailable: no OPENWEATHER_API_KEY is configured on this server."
    )


def test_current_weather(weather, openweather):
    with openweather(Reply.json(LISBON)) as server:
        observation = weather(location="Lisbon")
    assert observation == (
        "Weather in Lisbon, PT: light rain, 18.0 °C (feels like 17.5 °C), humidity 72%, wind 4.1 m/s."
    )
    (request,) = server.requests
    assert request.path == "/data/2.5/weather"
    assert request.query == {"q": "Lisbon", "appid": "weather-key", "units": "metric"}


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply.json({"cod": "404"}, status=404), "Weather: no place called 'Atlantis' was found."),
        (Reply.json({"cod": 401}, status=401), "Weather is unavailable: OpenWeatherMap HTTP 401."),
        (Reply(body=b"garbage"), "Weather is unavailable: OpenWeatherMap not JSON."),
        (Reply.json({"name": "X"}), "Weather is unavailable: OpenWeatherMap answered in an unexpected shape."),
        (
            Reply.json({**LISBON, "main": {"temp": "warm"}}),
            "Weather is unavailable: OpenWeatherMap answered in an unexpected shape.",
        ),
    ],
)
def test_provider_failures_are_observations(weather, openweather, reply, said):
    with openweather(reply):
        assert weather(location="Atlantis") == said


def test_without_network_or_with_a_hanging_provider(weather, settings):
    settings.OPENWEATHER_API_KEY, settings.OPENWEATHER_URL = "k", closed_port_url()
    assert weather(location="Lisbon").startswith("Weather is unavailable: OpenWeatherMap unreachable (")
    with SilentServer() as server:
        settings.OPENWEATHER_URL, settings.WEB_TIMEOUT_SECONDS = server.url, 1
        assert weather(location="Lisbon") == "Weather is unavailable: OpenWeatherMap unreachable (timed out)."


def test_a_place_is_required(weather):
    assert weather(location=" ") == "Weather error: name a place, like 'Lisbon' or 'Paris, FR'."
