import json

import pytest

from agent.tools import ToolContext
from agent.tools.text_processor import MAX_TEXT_CHARS, make_text_processor

TEXT = (
    "The quick brown fox jumps over the lazy dog. Dogs are lazy! Foxes are quick and brown. "
    "Why do foxes jump?\n\nA second paragraph about foxes."
)


@pytest.fixture
def text_processor():
    return make_text_processor(ToolContext())


def test_counts(text_processor):
    assert text_processor(operation="stats", text=TEXT) == (
        "26 words, 138 characters (112 without spaces), 5 sentences, 2 paragraphs; about 0.1 min to read."
    )


def test_keywords_leave_out_stop_words(text_processor):
    assert text_processor(operation="keywords", text=TEXT) == (
        "Keywords: foxes, quick, brown, lazy, fox, jumps, dog, dogs"
    )


def test_summary_keeps_the_most_representative_sentences_in_order(text_processor):
    assert text_processor(operation="summary", text=TEXT) == (
        "Summary: The quick brown fox jumps over the lazy dog. Foxes are quick and brown. Why do foxes jump?"
    )


@pytest.mark.parametrize(
    ("operation", "expected"), [("upper", "HELLO WORLD."), ("lower", "hello world."), ("title", "Hello World.")]
)
def test_case_transforms(text_processor, operation, expected):
    assert text_processor(operation=operation, text="hello WORLD.") == expected


def test_find_and_replace_counts_replacements(text_processor):
    result = json.loads(text_processor(operation="replace", text="a cat, a cat", find="cat", replace="dog"))
    assert result == {"replacements": 2, "text": "a dog, a dog"}


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"operation": "stats", "text": "   "}, "there is no text to work on"),
        ({"operation": "stats", "text": None}, "there is no text to work on"),
        ({"operation": "stats", "text": "x" * (MAX_TEXT_CHARS + 1)}, "limited to"),
        ({"operation": "replace", "text": "abc"}, "replace needs the text to find"),
        ({"operation": "shout", "text": "abc"}, "unknown operation 'shout'"),
    ],
)
def test_bad_input_is_an_observation_not_an_exception(text_processor, arguments, error):
    observation = text_processor(**arguments)
    assert observation.startswith("Text processor error:") and error in observation
