"""Import files written from the formats' descriptions (ChatGPT's conversations.json, Open WebUI's
chat export), small enough to read."""

from __future__ import annotations

from typing import Any

T0 = 1_700_000_000.0


def chatgpt_node(
    node_id: str,
    parent: str | None,
    children: list[str],
    role: str | None = None,
    parts: list[Any] | None = None,
    *,
    content: dict[str, Any] | None = None,
    time: float | None = T0,
    hidden: bool = False,
    status: str = "finished_successfully",
    name: str | None = None,
) -> dict[str, Any]:
    message = None
    if role is not None:
        message = {
            "id": node_id,
            "author": {"role": role, "name": name, "metadata": {}},
            "create_time": time,
            "update_time": None,
            "content": content or {"content_type": "text", "parts": parts or []},
            "status": status,
            "end_turn": True,
            "weight": 1.0,
            "metadata": {"is_visually_hidden_from_conversation": True} if hidden else {"model_slug": "gpt-4o"},
            "recipient": "all",
        }
    return {"id": node_id, "message": message, "parent": parent, "children": children}


def chatgpt_conversation(title: str = "Trip to Lisbon") -> dict[str, Any]:
    """root (null) -> hidden system -> user "Plan a trip" -> two answers (a regeneration):
    a1 (then user "Thanks" -> a tool call -> code answer) and a2 (current, unfinished)."""
    mapping = [
        chatgpt_node("root", None, ["sys"]),
        chatgpt_node("sys", "root", ["u1"], "system", [""], hidden=True, time=None),
        chatgpt_node("u1", "sys", ["a1", "a2"], "user", ["Plan a trip", "to Lisbon"], time=T0 + 1),
        chatgpt_node("a1", "u1", ["u2"], "assistant", ["Day 1: Alfama"], time=T0 + 2),
        chatgpt_node("a2", "u1", [], "assistant", ["Day 1: Belém"], time=T0 + 3, status="in_progress"),
        chatgpt_node(
            "u2",
            "a1",
            ["t1"],
            "user",
            content={
                "content_type": "multimodal_text",
                "parts": [
                    {"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"},
                    "What is this?",
                ],
            },
            time=None,
        ),
        chatgpt_node("t1", "u2", ["c1"], "tool", ["search results"], time=T0 + 5, name="browser"),
        chatgpt_node(
            "c1",
            "t1",
            [],
            "assistant",
            content={"content_type": "code", "language": "python", "text": "print('hi')"},
            time=T0 + 6,
        ),
    ]
    return {
        "title": title,
        "create_time": T0,
        "update_time": T0 + 10,
        "mapping": {node["id"]: node for node in mapping},
        "current_node": "a2",
        "conversation_id": "conv-1",
        "id": "conv-1",
    }


def open_webui_chat(title: str = "Recipes") -> dict[str, Any]:
    """user m1 -> two answers m2 / m3 (m3 current) -> m4 under m2."""

    def message(mid: str, parent: str | None, children: list[str], role: str, content: str, ts: int) -> dict:
        return {
            "id": mid,
            "parentId": parent,
            "childrenIds": children,
            "role": role,
            "content": content,
            "timestamp": ts,
            "model": "llama3" if role == "assistant" else None,
        }

    messages = {
        "m1": message("m1", None, ["m2", "m3"], "user", "A soup recipe?", 1_700_000_100),
        "m2": message("m2", "m1", ["m4"], "assistant", "Minestrone.", 1_700_000_101),
        "m3": message("m3", "m1", [], "assistant", "Gazpacho.", 1_700_000_102),
        "m4": message("m4", "m2", [], "user", "Without beans?", 1_700_000_103),
    }
    return {
        "id": "owui-1",
        "user_id": "u",
        "title": title,
        "chat": {"id": "", "title": title, "models": ["llama3"], "history": {"currentId": "m3", "messages": messages}},
        "updated_at": 1_700_000_200,
        "created_at": 1_700_000_100,
        "archived": False,
    }


def chatgpt_hidden_and_system(title: str = "Instructions") -> dict[str, Any]:
    """root -> a hidden user context message (not empty) -> user "Hi" -> an empty system message
    (not marked hidden) -> "Hello"; and under "Hi" a visible system message "Be brief"."""
    mapping = [
        chatgpt_node("root", None, ["ctx"]),
        chatgpt_node("ctx", "root", ["u1"], "user", ["My custom instructions"], hidden=True, time=T0),
        chatgpt_node("u1", "ctx", ["s1", "s2"], "user", ["Hi"], time=T0 + 1),
        chatgpt_node("s1", "u1", ["a1"], "system", [""], time=T0 + 2),
        chatgpt_node("a1", "s1", [], "assistant", ["Hello"], time=T0 + 3),
        chatgpt_node("s2", "u1", [], "system", ["Be brief"], time=T0 + 4),
    ]
    return {
        "title": title,
        "create_time": T0,
        "update_time": T0 + 10,
        "mapping": {node["id"]: node for node in mapping},
        "current_node": "a1",
        "id": "conv-2",
    }
