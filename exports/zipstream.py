"""A ZIP archive written as a stream of bytes, with the standard library only.

``zipfile`` writes to an unseekable file by putting each entry's sizes and CRC in a data
descriptor after its data; the sink below hands on what it was given after each write, so no
more than one chunk of one entry is ever held.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


class ZipStream:
    """``add`` entries (each from an iterable of bytes), yielding the archive's bytes as they come."""

    def __init__(self) -> None:
        self.sink = _Sink()
        self.archive = zipfile.ZipFile(self.sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)  # type: ignore[arg-type]

    def add(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        with self.archive.open(name, "w", force_zip64=True) as entry:
            for chunk in chunks:
                entry.write(chunk)
                yield from self.sink.drain()
        yield from self.sink.drain()

    def close(self) -> Iterator[bytes]:
        self.archive.close()
        yield from self.sink.drain()
