import io
import random

import pytest
from django.core.management import call_command
from rank_bm25 import BM25Okapi

from agent import memory
from agent.memory import BM25Index, memory_add, memory_rebuild, memory_searcher, user_memory
from agent.models import MemoryEntry
from agent.tools import ToolContext
from agent.tools.memory import make_memory_search
from messaging.tests.factories import make_message
from threads.services import thread_delete
from threads.tests.factories import make_thread

VOCABULARY = [f"w{n}" for n in range(300)]


def random_corpus(size: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    # Zipf-like: a few words appear in most documents, so some idfs go negative (the epsilon rule).
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    return [rng.choices(VOCABULARY, weights, k=rng.randint(0, 40)) for _ in range(size)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scores_equal_a_freshly_built_bm25okapi_at_every_size(seed):
    corpus = random_corpus(400, seed)
    rng = random.Random(seed)
    index = BM25Index()
    for size, tokens in enumerate(corpus, 1):
        index.add(size - 1, tokens)
        if size in (1, 2, 7, 50, 199, 400):
            reference = BM25Okapi(corpus[:size])
            for _ in range(20):
                query = [*rng.choices(VOCABULARY[:60], k=rng.randint(1, 6)), "never-seen"]
                dense = [0.0] * size
                for doc, score in index.scores(query).items():
                    dense[doc] = score
                assert dense == pytest.approx(list(reference.get_scores(query)), rel=1e-9, abs=1e-12)


def test_top_results_are_bm25okapis_best_positive_scores():
    corpus = random_corpus(300, 9)
    index = BM25Index()
    for number, tokens in enumerate(corpus):
        index.add(number, tokens)
    query = ["w3", "w40", "w41"]
    reference = BM25Okapi(corpus).get_scores(query)
    matching = [i for i, tokens in enumerate(corpus) if set(query) & set(tokens)]
    expected = sorted(matching, key=lambda i: (-reference[i], i))[:5]
    assert [doc for doc, _ in index.top(query, 5)] == expected
    assert [score for _, score in index.top(query, 5)] == pytest.approx([reference[i] for i in expected])


def test_a_tiny_memory_still_finds_what_mentions_the_query():
    # One document: BM25Okapi's idf is negative for all its terms; it must still be found.
    index = BM25Index()
    index.add("only", ["lisbon", "trip"])
    index.add("other", ["bicycl"])
    assert [doc for doc, _ in index.top(["lisbon"], 5)] == ["only"]
    assert index.top(["volcano"], 5) == []


def remember(thread, content, **fields):
    message = make_message(thread, content, **fields)
    memory_add(message)
    return message


@pytest.mark.django_db
def test_finds_the_users_own_messages_across_threads_with_thread_and_date(user):
    trip = make_thread(user, "Holidays")
    remember(trip, "My trip to Lisbon is booked for March, flying on the 12th.")
    remember(make_thread(user, "Work"), "The quarterly report is due on Friday.")
    search = memory_searcher(user_id=user.pk)
    (hit,) = search("when is my trip?", 5)
    assert hit["thread_title"] == "Holidays" and hit["thread_id"] == str(trip.pk)
    assert hit["snippet"].startswith("My trip to Lisbon") and len(hit["date"]) == 10


@pytest.mark.django_db
def test_one_user_never_sees_another_users_memory(user, other_user):
    remember(make_thread(user), "My secret plan involves Lisbon.")
    remember(make_thread(other_user), "Bob also mentions Lisbon once.")
    alice_hits = memory_searcher(user_id=user.pk)("Lisbon", 10)
    bob_hits = memory_searcher(user_id=other_user.pk)("Lisbon", 10)
    assert [h["snippet"] for h in alice_hits] == ["My secret plan involves Lisbon."]
    assert [h["snippet"] for h in bob_hits] == ["Bob also mentions Lisbon once."]


@pytest.mark.django_db
def test_only_user_messages_are_remembered_and_only_once(user):
    thread = make_thread(user)
    question = remember(thread, "Remember the lighthouse.")
    assert memory_add(question).pk == MemoryEntry.objects.get().pk
    assert memory_add(make_message(thread, "AI talk about the lighthouse", role="ai")) is None
    assert MemoryEntry.objects.count() == 1


@pytest.mark.django_db
def test_new_messages_are_added_without_rebuilding_or_retokenizing(user, django_assert_num_queries, monkeypatch):
    thread = make_thread(user)
    remember(thread, "The blue bicycle needs a new chain.")
    index_before = user_memory(user.pk).index
    remember(thread, "The red kayak is in the garage.")
    # Documents are never tokenized again: their tokens come from the stored rows.
    monkeypatch.setattr(memory, "index_tokens", lambda text: text.lower().strip("?").split())
    with django_assert_num_queries(1):  # the rows added since the last use
        refreshed = user_memory(user.pk)
    assert refreshed.index is index_before and len(refreshed.index) == 2
    assert [doc.snippet for doc, _ in refreshed.index.top(["kayak"], 3)] == ["The red kayak is in the garage."]


@pytest.mark.django_db
def test_deleted_threads_are_forgotten_at_once(user):
    thread = make_thread(user)
    remember(thread, "Gone with the thread: zeppelin.")
    thread_delete(thread=thread)
    assert memory_searcher(user_id=user.pk)("zeppelin", 5) == []


@pytest.mark.django_db
def test_rebuild_restores_the_entries_and_every_process_reloads(user, django_capture_on_commit_callbacks):
    thread = make_thread(user)
    messages = [remember(thread, text) for text in ("Alpha centauri trip.", "Beta testing notes.")]
    make_message(thread, "A message from before memory existed: gamma rays.")  # never added
    stale = user_memory(user.pk)
    MemoryEntry.objects.filter(message=messages[0]).update(tokens=["corrupted"])
    with django_capture_on_commit_callbacks(execute=True):
        call_command("rebuild_memory", stdout=io.StringIO())
    assert MemoryEntry.objects.count() == 3
    assert MemoryEntry.objects.get(message=messages[0]).tokens == ["alpha", "centauri", "trip"]
    fresh = user_memory(user.pk)
    assert fresh is not stale and len(fresh.index) == 3
    assert [h["snippet"] for h in memory_searcher(user_id=user.pk)("gamma", 5)] == [
        "A message from before memory existed: gamma rays."
    ]


@pytest.mark.django_db
def test_rebuild_reports_what_it_indexed(user, capsys):
    remember(make_thread(user), "one")
    call_command("rebuild_memory")
    assert capsys.readouterr().out == "Rebuilt memory: 1 message(s) indexed.\n"
    assert memory_rebuild() == 1


@pytest.mark.django_db
def test_the_tool_lists_hits_or_says_nothing_matched(user):
    remember(make_thread(user, "Trips"), "I loved the pastries in Lisbon.")
    tool = make_memory_search(ToolContext(memory_search=memory_searcher(user_id=user.pk)))
    assert tool(query="Lisbon pastries").startswith("From your earlier messages (1 found):\n- In “Trips” on ")
    assert tool(query="volcano") == "Nothing in your earlier messages matches 'volcano'."
    assert tool(query=" ") == "Memory search error: no query."
    assert make_memory_search(ToolContext())(query="x") == "Memory is unavailable in this conversation."
