import pytest

from agent.tools import AttachmentInfo, ToolContext
from agent.tools.file_processor import make_file_processor


@pytest.fixture
def attach(tmp_path):
    def attach(filename: str, data: bytes, file_type: str) -> AttachmentInfo:
        path = tmp_path / filename
        path.write_bytes(data)
        return AttachmentInfo(filename, file_type, len(data), str(path))

    return attach


def tool(*attachments: AttachmentInfo):
    return make_file_processor(ToolContext(attachments=list(attachments)))


def test_csv_rows_columns_and_per_column_statistics(attach):
    trips = attach("trips.csv", b"city,visits,rating\nLisbon,3,4.5\nPorto,1,4\nParis,2,\n", "text/csv")
    assert tool(trips)(filename="trips.csv") == (
        "trips.csv:\n"
        "CSV with 3 rows and 3 columns: city, visits, rating.\n"
        "- city: text, 3 distinct values (Lisbon, Paris, Porto)\n"
        "- visits: numeric, min 1, max 3, mean 2, sum 6\n"
        "- rating: numeric, min 4, max 4.5, mean 4.25, sum 8.5"
    )


def test_csv_dialect_is_sniffed(attach):
    semicolons = attach("data.csv", b"a;b\n1;x\n2;y\n", "text/csv")
    assert "CSV with 2 rows and 2 columns: a, b." in tool(semicolons)(filename="")


def test_broken_csv_is_a_clear_answer(attach):
    huge_field = attach("big.csv", b"a\n" + b"x" * 200_000, "text/csv")
    assert "could not be read as CSV (field larger than field limit" in tool(huge_field)(filename="big.csv")


def test_json_structure(attach):
    data = b'{"trips": [{"city": "Lisbon", "days": 3}], "owner": null, "ok": true}'
    assert tool(attach("t.json", data, "application/json"))() == (
        "t.json:\nJSON structure: {trips: list of 1 [{city: string, days: int}], owner: null, ok: bool}"
    )
    assert "is not valid JSON" in tool(attach("bad.json", b"{bad", "application/json"))()


def test_markdown_counts_keywords_and_summary(attach):
    notes = (
        b"# Notes\n\nLisbon is lovely. We ate pastries in Lisbon. The trams are yellow.\n\n- Porto next\n- then Paris"
    )
    assert tool(attach("notes.md", notes, "text/markdown"))() == (
        "notes.md:\n17 words, 5 sentences, 3 paragraphs (about 0.1 min to read). "
        "Keywords: lisbon, notes, lovely, ate, pastries, trams.\n"
        "Summary: Lisbon is lovely. We ate pastries in Lisbon. Porto next then Paris"
    )


def test_unknown_types_get_a_clear_answer(attach):
    image = attach("cat.png", b"\x89PNG\r\n\x1a\n", "image/png")
    assert tool(image)() == (
        "cat.png (image/png, 8 bytes): I can read CSV, JSON, text and Markdown files; "
        "this type is stored but not analysed."
    )


def test_picks_the_named_file_else_the_latest(attach):
    first = attach("first.txt", b"Alpha words here.", "text/plain")
    second = attach("second.txt", b"Beta words here.", "text/plain")
    assert tool(first, second)(filename="FIRST.txt").startswith("first.txt:")
    assert tool(first, second)(filename="").startswith("second.txt:")
    missing = tool(first, second)(filename="nope.csv")
    assert missing.startswith("No file named 'nope.csv' here (files: first.txt, second.txt). second.txt:")


def test_no_file_and_a_vanished_file(attach, tmp_path):
    assert tool()().startswith("There is no file in this conversation.")
    gone = attach("gone.txt", b"x", "text/plain")
    (tmp_path / "gone.txt").unlink()
    assert tool(gone)() == "gone.txt: the stored file could not be read."
