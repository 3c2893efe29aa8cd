"""The in-process memory of authenticated API keys: bounded, expiring, and cleared safely."""

from __future__ import annotations

from flowyard.server.ops._key_cache import KeyCache


def test_a_stored_key_is_found_until_its_entry_expires() -> None:
    now = [100.0]
    cache = KeyCache(ttl=5, clock=lambda: now[0])
    cache.put("k", "principal", cache.generation)
    assert cache.get("k") == "principal"
    now[0] += 4.9
    assert cache.get("k") == "principal"
    now[0] += 0.1
    assert cache.get("k") is None
    assert len(cache) == 0


def test_a_row_read_before_a_clear_is_not_stored_after_it() -> None:
    cache = KeyCache()
    generation = cache.generation  # a request starts reading the key's row
    cache.clear()  # meanwhile a revocation commits
    cache.put("k", "principal", generation)
    assert cache.get("k") is None
    cache.put("k", "principal", cache.generation)
    assert cache.get("k") == "principal"


def test_the_cache_holds_at_most_its_bound_dropping_the_oldest_entry() -> None:
    cache = KeyCache(max_entries=3)
    for name in "abcd":
        cache.put(name, name.upper(), cache.generation)
    assert len(cache) == 3
    assert cache.get("a") is None
    assert [cache.get(n) for n in "bcd"] == ["B", "C", "D"]
