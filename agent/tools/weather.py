"""WeatherTool: current weather from OpenWeatherMap when OPENWEATHER_API_KEY is set."""

from __future__ import annotations

from django.conf import settings

from agent.http import FetchError, fetch_json

from . import Tool, ToolContext, register


def current_weather(location: str) -> str:
    location = (location or "").strip()
    if not location:
        return "Weather error: name a place, like 'Lisbon' or 'Paris, FR'."
    if not settings.OPENWEATHER_API_KEY:
        return "Weather is unavailable: no OPENWEATHER_API_KEY is configured on this server."
    try:
        data = fetch_json(
            settings.OPENWEATHER_URL,
            params={"q": location, "appid": settings.OPENWEATHER_API_KEY, "units": "metric"},
            timeout=settings.WEB_TIMEOUT_SECONDS,
        )
    except FetchError as exc:
        if "404" in str(exc):
            return f"Weather: no place called {location!r} was found."
        return f"Weather is unavailable: OpenWeatherMap {exc}."
    try:
        place = f"{data['name']}, {data.get('sys', {}).get('country', '')}".rstrip(", ")
        main, wind = data["main"], data.get("wind") or {}
        temperature = float(main["temp"])
        feels_like = float(main.get("feels_like", temperature))
        description = ", ".join(w.get("description", "") for w in data.get("weather", [])) or "no description"
    except (KeyError, TypeError, ValueError, AttributeError):
        return "Weather is unavailable: OpenWeatherMap answered in an unexpected shape."
    return (
        f"Weather in {place}: {description}, {temperature:.1f} °C (feels like {feels_like:.1f} °C), "
        f"humidity {main.get('humidity', '?')}%, wind {wind.get('speed', '?')} m/s."
    )


@register("weather", order=70)
def make_weather(context: ToolContext) -> Tool:
    def weather(location: str) -> str:
        """Current weather for a place (city, optionally ', country code')."""
        return current_weather(location)

    return weather
