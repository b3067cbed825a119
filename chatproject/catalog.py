"""The models operators offer: ``AGENT_MODELS`` parsed and checked once, at start-up.

``AGENT_MODELS`` lists models by name, separated by ``;``. Each entry is ``NAME=LITELLM_MODEL``
followed by optional ``,api_base=URL`` and ``,api_key_env=VARIABLE`` (the name of the environment
variable that holds the key, never the key itself)::

    AGENT_MODELS="gpt-4o-mini=openai/gpt-4o-mini,api_key_env=OPENAI_API_KEY; llama=ollama_chat/llama3.2,api_base=http://127.0.0.1:11434"

``offline`` (the built-in model) is always offered. ``AGENT_LM`` names the default: one of these
names, ``offline``, or a LiteLLM model string (offered under that string, with ``AGENT_API_BASE``
and the provider's usual key variable), as before ``AGENT_MODELS`` existed.

Imports nothing of Django's at module level but its configuration error: settings.py reads it. It lives in
chatproject because threads (which validate a thread's model) and agent (which runs it) both need it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

OFFLINE = "offline"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
OPTIONS = ("api_base", "api_key_env")


@dataclass(frozen=True)
class ModelSpec:
    """One offered model. ``api_key_env`` names the variable with its key; the key is read when used."""

    name: str
    model: str
    api_base: str = ""
    api_key_env: str = ""

    @property
    def is_offline(self) -> bool:
        return self.model == OFFLINE

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""


def _fail(message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"AGENT_MODELS: {message}")


def _entry(text: str, environ: dict[str, str]) -> ModelSpec:
    head, *options = [part.strip() for part in text.split(",")]
    if "=" not in head:
        raise _fail(f"{text!r} must start with NAME=LITELLM_MODEL (for example gpt=openai/gpt-4o-mini)")
    name, model = (part.strip() for part in head.split("=", 1))
    if not NAME.match(name):
        raise _fail(f"model name {name!r} must be 1-64 letters, digits, '.', '_', ':' or '-'")
    if name == OFFLINE:
        raise _fail("'offline' is the built-in model's name and is always offered: choose another name")
    if "/" not in model or model.startswith("/") or model.endswith("/"):
        raise _fail(f"{name}: {model!r} is not a LiteLLM model string (PROVIDER/MODEL, like openai/gpt-4o-mini)")
    values: dict[str, str] = {}
    for option in options:
        key, _, value = (part.strip() for part in option.partition("="))
        if key not in OPTIONS or not value:
            raise _fail(f"{name}: unknown or empty option {option!r} (allowed: {', '.join(OPTIONS)})")
        values[key] = value
    base = values.get("api_base", "")
    if base and (urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc):
        raise _fail(f"{name}: api_base {base!r} must be an http(s) URL")
    key_env = values.get("api_key_env", "")
    if key_env and not ENV_NAME.match(key_env):
        raise _fail(f"{name}: api_key_env must name an environment variable, got {key_env!r}")
    if key_env and not environ.get(key_env, "").strip():
        raise _fail(f"{name}: its key variable {key_env} is not set")
    return ModelSpec(name=name, model=model, api_base=base, api_key_env=key_env)


def parse_models(
    value: str, *, default_lm: str, default_api_base: str = "", environ: dict[str, str] | None = None
) -> tuple[dict[str, ModelSpec], str]:
    """``(models by name, the default's name)``; ImproperlyConfigured naming AGENT_MODELS when wrong."""
    environ = dict(os.environ) if environ is None else environ
    models = {OFFLINE: ModelSpec(name=OFFLINE, model=OFFLINE)}
    for text in (part.strip() for part in value.split(";")):
        if not text:
            continue
        spec = _entry(text, environ)
        if spec.name in models:
            raise _fail(f"the name {spec.name!r} is given twice")
        models[spec.name] = spec
    default = default_lm.strip() or OFFLINE
    if default not in models:
        if "/" not in default:
            names = ", ".join(models)
            raise ImproperlyConfigured(
                f"AGENT_LM must be one of the AGENT_MODELS names ({names}) or a LiteLLM model string, got {default!r}"
            )
        models[default] = ModelSpec(
            name=default,
            model=default,
            api_base=default_api_base,
            api_key_env=PROVIDER_KEYS.get(default.split("/", 1)[0], ""),
        )
    return models, default


# --- At run time --------------------------------------------------------------------------------


def offered() -> dict[str, ModelSpec]:
    """Every model users may choose, by name: AGENT_MODELS, ``offline`` and the default."""
    from django.conf import settings

    models = dict(settings.AGENT_MODELS)
    default = default_spec()
    models.setdefault(default.name, default)
    return models


def default_spec() -> ModelSpec:
    """The model of threads that chose none (``AGENT_LM``)."""
    from django.conf import settings

    name = settings.AGENT_LM
    if name in settings.AGENT_MODELS:
        spec: ModelSpec = settings.AGENT_MODELS[name]
        return spec
    if name == OFFLINE:
        return ModelSpec(name=OFFLINE, model=OFFLINE)
    return ModelSpec(
        name=name,
        model=name,
        api_base=settings.AGENT_API_BASE,
        api_key_env=PROVIDER_KEYS.get(name.split("/", 1)[0], ""),
    )


def resolve(name: str | None) -> tuple[ModelSpec, bool]:
    """``(the model to use for a thread's model name, whether it fell back to the default)``.

    An empty name means the default; a name no longer offered (removed from AGENT_MODELS) falls
    back to the default.
    """
    if not name:
        return default_spec(), False
    spec = offered().get(name)
    return (spec, False) if spec else (default_spec(), True)
