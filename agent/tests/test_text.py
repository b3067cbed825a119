from agent import text


def test_index_tokens_are_stemmed_lower_case_content_words():
    assert text.index_tokens("I'm planning my trips to Lisbon, running QUICKLY; the_end 42") == [
        "plan",
        "trip",
        "lisbon",
        "run",
        "quick",
        "end",
        "42",
    ]


def test_stop_words_come_from_the_shipped_list():
    assert {"the", "and", "my", "about"} <= text.stopwords()
    assert "lisbon" not in text.stopwords()


def test_sentences_split_on_terminal_punctuation_before_a_capital():
    assert text.sentences("Dr. no. It works! Does it? yes.") == ["Dr. no.", "It works!", "Does it? yes."]


def test_short_texts_are_their_own_summary():
    assert text.summarize("One. Two.") == "One. Two."
