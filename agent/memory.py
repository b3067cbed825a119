"""Conversation memory: BM25 search over a user's own past messages, in all their threads.

``BM25Index`` scores exactly as rank-bm25's ``BM25Okapi`` (k1 1.5, b 0.75, epsilon 0.25: the
same idf, including its replacement of negative idfs by ``epsilon * mean idf``), but keeps an
inverted index: adding a message updates counts instead of rebuilding, a query only visits the
messages that contain its terms, and idfs are computed for the query's terms only. Tokens are
stored in ``MemoryEntry`` rows, so an index is rebuilt from the database without tokenizing again.
Each process keeps one index per user and brings it up to date (new rows only) before each use.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

from messaging.models import ChatMessage
from threads.models import ChatThread

from .models import MemoryEntry
from .text import index_tokens

GENERATION_KEY = "agent:memory:generation"
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class MemoryDoc:
    message_id: str
    thread_id: str
    created_at: datetime
    snippet: str


class BM25Index:
    """Incremental BM25Okapi: same scores, no rebuild on add, sparse queries."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> None:
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self.docs: list[Any] = []
        self.doc_len: list[int] = []
        self.total_len = 0
        self.postings: dict[str, dict[int, int]] = {}
        # How many terms occur in exactly d documents, by d: the mean idf (for BM25Okapi's floor
        # on negative idfs) is a sum over these few counts, not over the whole vocabulary. Made
        # on first need (a bulk load does not pay for it), then kept up to date by add().
        self.df_counts: Counter[int] | None = None
        self._floor: float | None = None

    def __len__(self) -> int:
        return len(self.docs)

    def add(self, doc: Any, tokens: list[str]) -> None:
        index = len(self.docs)
        self.docs.append(doc)
        self.doc_len.append(len(tokens))
        self.total_len += len(tokens)
        counts: dict[str, int] = {}
        for term in tokens:
            counts[term] = counts.get(term, 0) + 1
        all_postings, df_counts = self.postings, self.df_counts
        for term, count in counts.items():
            postings = all_postings.get(term)
            if postings is None:
                postings = all_postings[term] = {}
            elif df_counts is not None:
                df_counts[len(postings)] -= 1
            postings[index] = count
            if df_counts is not None:
                df_counts[len(postings)] += 1
        self._floor = None

    def _raw_idf(self, df: int) -> float:
        n = len(self.docs)
        return math.log(n - df + 0.5) - math.log(df + 0.5)

    def idf(self, term: str) -> float:
        """The term's idf as BM25Okapi._calc_idf computes it: negative ones become epsilon * mean."""
        postings = self.postings.get(term)
        if not postings:
            return 0.0
        value = self._raw_idf(len(postings))
        if value >= 0:
            return value
        if self._floor is None:
            if self.df_counts is None:
                self.df_counts = Counter(len(postings) for postings in self.postings.values())
            total = sum(terms * self._raw_idf(df) for df, terms in self.df_counts.items() if terms)
            self._floor = self.epsilon * total / len(self.postings)
        return self._floor

    def scores(self, query: list[str]) -> dict[int, float]:
        """BM25Okapi's score of every document that contains a query term, by document index.

        Every other document scores 0, as in BM25Okapi. A matching document's score can be 0 or
        negative too: in a small memory most terms occur in half the documents or more, which
        gives them an idf at or below 0 (BM25Okapi's rule, kept as it is).
        """
        if not self.docs:
            return {}
        avgdl = self.total_len / len(self.docs)
        k1, b = self.k1, self.b
        scores: dict[int, float] = {}
        for term in query:
            postings = self.postings.get(term)
            if not postings:
                continue
            weight = self.idf(term)
            for index, tf in postings.items():
                norm = k1 * (1 - b + b * self.doc_len[index] / avgdl) if avgdl else k1 * (1 - b)
                scores[index] = scores.get(index, 0.0) + weight * (tf * (k1 + 1) / (tf + norm))
        return scores

    def top(self, query: list[str], k: int, keep: Callable[[Any], bool] = lambda doc: True) -> list[tuple[Any, float]]:
        """The k best documents containing a query term, by BM25Okapi score (ties: earlier first).

        Documents without any query term are never results, even when every match scores below
        0: what a user is looking for is a message that mentions it.
        """
        ranked = heapq.nsmallest(
            k, ((-score, index) for index, score in self.scores(query).items() if keep(self.docs[index]))
        )
        return [(self.docs[index], -negative) for negative, index in ranked]


class UserMemory:
    """One user's index in this process, kept in step with their MemoryEntry rows."""

    def __init__(self, user_id: int, generation: int) -> None:
        self.user_id = user_id
        self.generation = generation
        self.index = BM25Index()
        self.last_entry_id = 0
        self.lock = threading.Lock()

    def refresh(self) -> None:
        with self.lock:
            rows = (
                MemoryEntry.objects.filter(user_id=self.user_id, id__gt=self.last_entry_id)
                .order_by("id")
                .values_list("id", "message_id", "thread_id", "message_created_at", "snippet", "tokens")
            )
            for entry_id, message_id, thread_id, created_at, snippet, tokens in rows.iterator(chunk_size=2000):
                self.index.add(MemoryDoc(str(message_id), str(thread_id), created_at, snippet), tokens)
                self.last_entry_id = entry_id


_memories: dict[int, UserMemory] = {}
_memories_lock = threading.Lock()


def _generation() -> int:
    return cast(int, cache.get_or_set(GENERATION_KEY, 1, timeout=None))  # set when missing: never None


def memory_invalidate() -> None:
    """Make every process rebuild its indexes from the database on their next use.

    An index only ever adds rows newer than the last it has seen (ids are never reused: Django
    creates them AUTOINCREMENT on SQLite, from a sequence on PostgreSQL), so a rebuild, which
    replaces rows, must tell every process.
    """
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, 2, timeout=None)


def user_memory(user_id: int) -> UserMemory:
    """The user's up-to-date index (new rows added; rebuilt after ``memory_rebuild``)."""
    generation = _generation()
    with _memories_lock:
        memory = _memories.get(user_id)
        if memory is None or memory.generation != generation:
            memory = _memories[user_id] = UserMemory(user_id, generation)
    memory.refresh()
    return memory


def memory_add(message: ChatMessage) -> MemoryEntry | None:
    """Remember a user message (idempotent); other roles are not remembered."""
    if message.role != ChatMessage.Role.USER or message.sender_id is None:
        return None
    entry, _ = MemoryEntry.objects.get_or_create(message=message, defaults=_entry_fields(message))
    return entry


def memory_add_many(messages: Iterable[ChatMessage], *, batch_size: int = 1000) -> int:
    """Remember many user messages at once (an import), in a few queries; idempotent.

    Other roles are not remembered. Each process's index picks the new rows up on its next use.
    """
    entries = [
        MemoryEntry(message_id=m.pk, **_entry_fields(m))
        for m in messages
        if m.role == ChatMessage.Role.USER and m.sender_id is not None
    ]
    MemoryEntry.objects.bulk_create(entries, batch_size=batch_size, ignore_conflicts=True)
    return len(entries)


def _entry_fields(message: ChatMessage) -> dict[str, Any]:
    return {
        "user_id": message.sender_id,
        "thread_id": message.thread_id,
        "tokens": index_tokens(message.content),
        "snippet": message.content[:SNIPPET_CHARS],
        "message_created_at": message.created_at,
    }


def _remembered_messages() -> QuerySet[ChatMessage]:
    return ChatMessage.objects.filter(role=ChatMessage.Role.USER, sender__isnull=False)


def memory_rebuild_count() -> int:
    """How many messages ``memory_rebuild`` will index (for a progress bar)."""
    return _remembered_messages().count()


@transaction.atomic
def memory_rebuild(*, batch_size: int = 2000, on_batch: Callable[[int], None] | None = None) -> int:
    """Recompute every user's entries from their messages; every process rebuilds its indexes.

    ``on_batch(n)`` is called after each batch of ``n`` entries is stored.
    """
    MemoryEntry.objects.all().delete()
    created = 0
    messages = _remembered_messages().order_by("created_at", "id")
    batch: list[MemoryEntry] = []
    for message in messages.iterator(chunk_size=batch_size):
        batch.append(MemoryEntry(message_id=message.pk, **_entry_fields(message)))
        if len(batch) >= batch_size:
            created += len(MemoryEntry.objects.bulk_create(batch))
            if on_batch:
                on_batch(len(batch))
            batch = []
    created += len(MemoryEntry.objects.bulk_create(batch))
    if on_batch and batch:
        on_batch(len(batch))
    transaction.on_commit(memory_invalidate)
    return created


def memory_searcher(
    *,
    user_id: int,
    exclude_message_id: str | None = None,
    thread_id: str | None = None,
    path_ids: Collection[str] = (),
) -> Callable[[str, int], list[dict[str, Any]]]:
    """A search function over the user's memory for tools: no database access when called.

    Hits in deleted threads are left out; each hit names its thread and date. With ``thread_id``,
    that thread's hits are only its messages in ``path_ids`` (the branch being answered): what
    was said on a branch the user left never reaches the agent.
    """
    memory = user_memory(user_id)
    titles = dict(
        ChatThread.objects.filter(owner_id=user_id).exclude(status=ChatThread.Status.DELETED).values_list("id", "title")
    )
    visible = {str(pk): title for pk, title in titles.items()}
    on_path = set(path_ids)

    def search(query: str, limit: int = 5) -> list[dict[str, Any]]:
        hits = memory.index.top(
            index_tokens(query),
            limit,
            keep=lambda doc: (
                doc.thread_id in visible
                and doc.message_id != exclude_message_id
                and (doc.thread_id != thread_id or doc.message_id in on_path)
            ),
        )
        return [
            {
                "message_id": doc.message_id,
                "thread_id": doc.thread_id,
                "thread_title": visible[doc.thread_id] or "Untitled",
                "date": doc.created_at.date().isoformat(),
                "snippet": doc.snippet,
                "score": round(score, 4),
            }
            for doc, score in hits
        ]

    return search
