import pytest

from agent import tools
from agent.tools import ToolContext, build_tools, load_all, register

SEVEN = ["calculator", "text_processor", "file_processor", "memory_search", "run_python", "web_search", "weather"]


def test_the_seven_tools_register_themselves():
    assert list(load_all()) == SEVEN


@pytest.fixture
def restore_registry():
    saved = dict(tools._registry)
    yield
    tools._registry.clear()
    tools._registry.update(saved)


@pytest.mark.usefixtures("restore_registry")
def test_a_new_tool_plugs_in_by_registering():
    @register("echo", order=15)
    def make_echo(context: ToolContext):
        def echo(text: str) -> str:
            """Say it back."""
            return f"{context.user_id}: {text}"

        return echo

    bound = build_tools(ToolContext(user_id=7))
    assert list(bound)[:3] == ["calculator", "echo", "text_processor"]
    assert bound["echo"](text="hi") == "7: hi"
