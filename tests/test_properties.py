"""Property tests of the storage round trips: whatever valid text goes in comes back out.

"Valid" is memento's own rule (``memento.validate``), so the properties hold for exactly
the inputs memento accepts. The hash embedder stands in for the model: these are storage
mechanics (get, export/import, forget, atomic batches), not recall quality; the one recall
property only needs a keyword hit on a unique marker word.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memento import Memory, validate
from memento.errors import InvalidInputError

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def is_valid(text: str) -> bool:
    try:
        validate.content(text)
    except InvalidInputError:
        return False
    return True


def is_valid_key(key: str) -> bool:
    """Keys follow one rule (validate.subject_key): no whitespace inside, no empty segment."""
    try:
        validate.subject_key(key)
    except InvalidInputError:
        return False
    return True


texts = st.text(max_size=300).filter(is_valid)
kinds = st.sampled_from(["fact", "event", "lesson"])
keys = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda k: k.strip() and is_valid_key(k))
metadata = st.dictionaries(
    st.text(max_size=10).filter(lambda k: "\x00" not in k and is_valid(k + "x")),
    st.one_of(st.integers(-(2**53), 2**53), st.booleans(), st.none(), st.text(max_size=20)),
    max_size=4,
).filter(lambda d: all(is_valid(f"{v}x") for v in d.values() if isinstance(v, str)))


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text verbatim: redaction would (rightly) change random text that looks like a key."""
    monkeypatch.setenv("MEMENTO_REDACT", "off")


@pytest.fixture
def fresh(hash_embedder) -> Iterator:
    """A factory of empty databases: hypothesis runs many examples per test function."""
    with TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def make() -> Memory:
            return Memory(Path(tmp) / f"m{next(counter)}.db", embedder=hash_embedder)

        yield make


@SETTINGS
@given(text=texts, kind=kinds, key=st.one_of(st.none(), keys), meta=metadata)
def test_store_then_get_returns_it_exactly(plain, fresh, text, kind, key, meta) -> None:
    with fresh() as memory:
        stored = memory.store(text, kind=kind, subject_key=key, metadata=meta)
        got = memory.get(stored.id)

    assert got.content == text.strip()
    # keys are stored lower-cased, as they are compared
    assert (got.kind, got.subject_key, got.metadata) == (kind, key and key.strip().lower(), meta)


@SETTINGS
@given(items=st.lists(st.tuples(texts, kinds, st.one_of(st.none(), keys)), max_size=8))
def test_export_then_import_is_lossless(plain, fresh, items) -> None:
    with fresh() as source, fresh() as target:
        for text, kind, key in items:
            source.store(text, kind=kind, subject_key=key)
        if items:
            source.forget(source.recent(1)[0].id)  # one archived memory travels too
        exported = list(source.export())

        first = target.import_records(exported)
        again = target.import_records(exported)

        assert list(target.export()) == exported
    assert first == {"added": len(exported), "updated": 0, "skipped": 0}
    assert again == {"added": 0, "updated": 0, "skipped": len(exported)}


@SETTINGS
@given(text=texts, hard=st.booleans())
def test_forgotten_memory_is_not_recalled(plain, fresh, text, hard) -> None:
    marker = "zqxmarker"
    with fresh() as memory:
        kept = memory.store(f"{marker} kept", kind="event")
        gone = memory.store(f"{marker} {text}", kind="event")
        assert gone.id in [r.id for r in memory.recall(marker)]

        memory.forget(gone.id, hard=hard)

        found = [r.id for r in memory.recall(marker, include_archived=True)]
        assert gone.id not in [r.id for r in memory.recall(marker)]
        assert kept.id in found
        assert (gone.id in found) is not hard


@SETTINGS
@given(
    good=st.lists(texts, min_size=1, max_size=5),
    bad=st.sampled_from(
        [{"content": ""}, {"content": "x", "kind": "opinion"}, {"content": "x", "importance": 2},
         {"content": "a\x00b"}, {"content": "x", "bogus": 1}, "not a dict"]
    ),
    where=st.integers(min_value=0),
)
def test_store_many_is_all_or_nothing(plain, fresh, good, bad, where) -> None:
    items: list = [{"content": text, "kind": "event"} for text in good]
    position = where % (len(items) + 1)
    items.insert(position, bad)
    with fresh() as memory:
        memory.store("already here", kind="event")
        before = list(memory.export())

        with pytest.raises(InvalidInputError, match=f"item {position + 1}: "):
            memory.store_many(items)

        assert list(memory.export()) == before
        del items[position]
        stored = memory.store_many(items)
        assert [r.content for r in stored] == [text.strip() for text in good]
