"""MemoryEventStore: the store contract, plus what only the memory store promises."""

from __future__ import annotations

import re

import pytest
import trio

from trio_smith.events import EventFilter, MemoryEventStore, StoreClosed

from .store_contract import PAID, Recorder, StoreContract, StoreFactory, event


class TestMemoryEventStore(StoreContract):
    @pytest.fixture
    def make_store(self) -> StoreFactory:
        return MemoryEventStore


def test_default_names_are_distinct_memory_names() -> None:
    first, second = MemoryEventStore(), MemoryEventStore()
    assert re.fullmatch(r"memory-\d+", first.name)
    assert re.fullmatch(r"memory-\d+", second.name)
    assert first.name != second.name


async def test_the_name_is_used_in_errors_and_repr() -> None:
    store = MemoryEventStore(name="audit")
    assert store.name == "audit"
    assert repr(store) == "<MemoryEventStore 'audit' head=0>"
    await store.append_many([event(), event()])
    assert repr(store) == "<MemoryEventStore 'audit' head=2>"
    await store.aclose()
    with pytest.raises(StoreClosed, match=r"^event store 'audit' is closed$"):
        await store.head()


@pytest.mark.parametrize(
    ("name", "shown"),
    [("", "''"), (3, "3"), (b"audit", "b'audit'")],
)
def test_a_bad_name_is_refused(name: object, shown: str) -> None:
    message = f"^{re.escape(f'name must be a non-empty str or None, got {shown}')}$"
    with pytest.raises(ValueError, match=message):
        MemoryEventStore(name=name)  # type: ignore[arg-type]


async def test_append_nowait_commits_and_tells_listeners_at_once() -> None:
    async with MemoryEventStore() as store:
        recorder = Recorder()
        store.add_listener(recorder)
        a = event()
        store.append_nowait(a)
        # No checkpoint in between: the event is already committed.
        assert recorder.batches == [[await store.get(a.id)]]
        assert await store.head() == 1
        assert await store.count(EventFilter(types=a.type)) == 1


async def test_each_append_call_is_one_listener_batch() -> None:
    async with MemoryEventStore() as store:
        recorder = Recorder()
        store.add_listener(recorder)
        a = await store.append(event())
        batch = await store.append_many([event(), event(PAID), a, event()])
        assert recorder.batches == [[a], [batch[0], batch[1], batch[3]]]


async def test_a_listener_may_remove_itself_while_being_called() -> None:
    async with MemoryEventStore() as store:
        seen: list[int] = []
        recorder = Recorder()

        def once(batch: object) -> None:
            seen.append(len(recorder.batches))
            remove()

        remove = store.add_listener(once)
        store.add_listener(recorder)
        a = await store.append(event())
        await store.append(event())
        assert seen == [0]
        assert len(recorder.batches) == 2
        assert recorder.batches[0] == [a]


async def test_a_cancelled_append_still_checks_its_argument_first() -> None:
    async with MemoryEventStore() as store:
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(TypeError, match=r"^expected an Event, got 1$"):
                await store.append(1)  # type: ignore[arg-type]
        assert not scope.cancelled_caught
