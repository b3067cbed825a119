"""Benchmark of the BM25 memory index against building rank-bm25's BM25Okapi per query.

    python3 bench/run.py memory [--sizes 1000,10000,100000 --queries 200]

For each size, synthetic messages (5 to 40 words drawn from a Zipf-like vocabulary of 20,000
words, so a few words are in most messages and most are rare, as in chat) are tokenized the
way the product does (``agent.text.index_tokens``). It measures:

- load: building our index from stored tokens (what a process does on a user's first search),
- query p50/p95 on the warm index (tokenizing the query included),
- add: tokenizing and adding one new message, and the first query after it (which recomputes
  the idf table), p50/p95,
- BM25Okapi built fresh for every query (build + get_scores), p50/p95, and BM25Okapi's query on
  a prebuilt index for reference.

Before timing, it checks that both return the same top results for a sample of queries.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from rank_bm25 import BM25Okapi  # noqa: E402

from agent.memory import BM25Index  # noqa: E402
from agent.text import index_tokens  # noqa: E402

VOCABULARY_SIZE = 20_000
FILLER = [
    "the",
    "and",
    "a",
    "to",
    "of",
    "in",
    "is",
    "it",
    "that",
    "i",
    "my",
    "we",
    "for",
    "on",
    "with",
    "this",
    "was",
    "at",
    "be",
]


def make_vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < VOCABULARY_SIZE:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def make_messages(count: int, vocabulary: list[str], rng: random.Random) -> list[str]:
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    messages = []
    for _ in range(count):
        content = rng.choices(vocabulary, weights, k=rng.randint(5, 40))
        content += rng.choices(FILLER, k=rng.randint(1, 8))
        rng.shuffle(content)
        messages.append(" ".join(content))
    return messages


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:.2f} / {percentile(values, 0.95) * 1000:.2f}"


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def bench_size(size: int, queries: int, rng: random.Random, vocabulary: list[str]) -> dict[str, str]:
    messages = make_messages(size + queries, vocabulary, rng)
    stored, new_messages = messages[:size], messages[size:]
    tokenize_seconds, corpus = timed(lambda: [index_tokens(m) for m in stored])
    query_texts = [" ".join(rng.choices(vocabulary[:3000], k=rng.randint(2, 4))) for _ in range(queries)]

    def load() -> BM25Index:
        index = BM25Index()
        for number, tokens in enumerate(corpus):
            index.add(number, tokens)
        return index

    load_seconds, index = timed(load)

    # Same results as BM25Okapi (checked on a sample before anything is timed).
    reference = BM25Okapi(corpus)
    for text in query_texts[:10]:
        tokens = index_tokens(text)
        scores = reference.get_scores(tokens)
        ours = index.top(tokens, 5)
        expected = sorted((d for d, _ in ours), key=lambda d: (-scores[d], d))
        assert [d for d, _ in ours] == expected, text
        assert all(abs(score - scores[d]) < 1e-9 for d, score in ours), text

    query_times = [timed(lambda t=t: index.top(index_tokens(t), 5))[0] for t in query_texts]

    add_times, first_query_times = [], []
    for number, (content, text) in enumerate(zip(new_messages, query_texts, strict=True)):
        add_times.append(timed(lambda c=content, n=number: index.add(size + n, index_tokens(c)))[0])
        first_query_times.append(timed(lambda t=text: index.top(index_tokens(t), 5))[0])

    fresh_runs = max(5, min(queries, 2_000_000 // size))
    fresh_times = [
        timed(lambda t=t: BM25Okapi(corpus).get_scores(index_tokens(t)))[0] for t in query_texts[:fresh_runs]
    ]
    cached_okapi = [timed(lambda t=t: reference.get_scores(index_tokens(t)))[0] for t in query_texts[:fresh_runs]]
    return {
        "messages": f"{size:,}",
        "tokenize all (s)": f"{tokenize_seconds:.2f}",
        "load index (ms)": f"{load_seconds * 1000:.0f}",
        "query p50 / p95 (ms)": ms(query_times),
        "add one p50 / p95 (ms)": ms(add_times),
        "query after add p50 / p95 (ms)": ms(first_query_times),
        "fresh BM25Okapi per query p50 / p95 (ms)": ms(fresh_times),
        "BM25Okapi prebuilt query p50 / p95 (ms)": ms(cached_okapi),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated message counts")
    parser.add_argument("--queries", type=int, default=200, help="queries (and adds) timed per size")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    vocabulary = make_vocabulary(rng)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"memory: {size:,} messages ...", flush=True)
        rows.append(bench_size(size, args.queries, rng, vocabulary))
    headers = list(rows[0])
    print("\n| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(row[h] for h in headers) + " |")
    print(f"\n(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; same top-5 as BM25Okapi on sampled queries)")


if __name__ == "__main__":
    main()
