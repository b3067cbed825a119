"""Text helpers shared by the memory index and the text and file tools.

Tokenizing needs no downloaded NLTK data: a regexp tokenizer, the Snowball stemmer, and a
stop-word list shipped in ``agent/data/stopwords_en.txt``.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

from nltk.stem.snowball import SnowballStemmer
from nltk.tokenize import RegexpTokenizer

STOPWORDS_FILE = Path(__file__).resolve().parent / "data" / "stopwords_en.txt"
WORDS_PER_MINUTE = 230

_word_tokenizer = RegexpTokenizer(r"[^\W_]+(?:'[^\W_]+)?")
_sentence_end = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_paragraph_break = re.compile(r"\n\s*\n")
_markdown_mark = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s?)")


@cache
def stopwords() -> frozenset[str]:
    return frozenset(
        line.strip() for line in STOPWORDS_FILE.read_text().splitlines() if line.strip() and not line.startswith("#")
    )


@cache
def _stemmer() -> SnowballStemmer:
    return SnowballStemmer("english")


def words(text: str) -> list[str]:
    """The words of a text, as written."""
    tokens: list[str] = _word_tokenizer.tokenize(text)
    return tokens


def index_tokens(text: str) -> list[str]:
    """Lower-cased, stemmed words without stop words: what the memory index stores and queries."""
    stem = _stemmer().stem
    stop = stopwords()
    return [stem(word) for word in (w.lower() for w in words(text)) if word not in stop]


def sentences(text: str) -> list[str]:
    """Sentences, also ended by a blank line; Markdown heading, list and quote marks dropped."""
    found = []
    for paragraph in _paragraph_break.split(text.strip()):
        paragraph = " ".join(_markdown_mark.sub("", line) for line in paragraph.splitlines())
        found += [s.strip() for s in _sentence_end.split(paragraph.strip()) if s.strip()]
    return found


def keywords(text: str, limit: int = 8) -> list[str]:
    """The most frequent content words (not stop words), most frequent first."""
    stop = stopwords()
    counts = Counter(w.lower() for w in words(text) if w.lower() not in stop and len(w) > 2 and not w.isdigit())
    return [word for word, _ in counts.most_common(limit)]


def summarize(text: str, max_sentences: int = 3) -> str:
    """An extractive summary: the sentences whose words are most frequent in the text, in order."""
    all_sentences = sentences(text)
    if len(all_sentences) <= max_sentences:
        return " ".join(all_sentences)
    stop = stopwords()
    frequency = Counter(w.lower() for w in words(text) if w.lower() not in stop)

    def score(sentence: str) -> float:
        tokens = [w.lower() for w in words(sentence) if w.lower() not in stop]
        return sum(frequency[t] for t in tokens) / (len(tokens) + 1) if tokens else 0.0

    best = sorted(range(len(all_sentences)), key=lambda i: (-score(all_sentences[i]), i))[:max_sentences]
    return " ".join(all_sentences[i] for i in sorted(best))


def counted(number: float, noun: str) -> str:
    """``counted(1, "word")`` is "1 word"; ``counted(2, "word")`` is "2 words"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def stats(text: str) -> dict[str, int | float]:
    word_count = len(words(text))
    return {
        "words": word_count,
        "characters": len(text),
        "characters_without_spaces": len(re.sub(r"\s", "", text)),
        "sentences": len(sentences(text)),
        "paragraphs": len([p for p in _paragraph_break.split(text) if p.strip()]),
        "reading_minutes": round(word_count / WORDS_PER_MINUTE, 1),
    }
