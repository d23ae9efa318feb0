from tracking.cache import ResponseCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hit_within_ttl_miss_after() -> None:
    clock = Clock()
    cache = ResponseCache(ttl_s=10, max_entries=10, clock=clock)
    assert cache.get("a", "1") is None
    cache.put("a", "1", {"predicted_class": "cat"})
    clock.now = 9.9
    assert cache.get("a", "1") == {"predicted_class": "cat"}
    clock.now = 10.1
    assert cache.get("a", "1") is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_bounded_lru() -> None:
    cache = ResponseCache(ttl_s=100, max_entries=2, clock=Clock())
    cache.put("a", "1", {"x": 1})
    cache.put("b", "1", {"x": 2})
    cache.get("a", "1")  # a is now most recent
    cache.put("c", "1", {"x": 3})
    assert len(cache) == 2
    assert cache.get("b", "1") is None
    assert cache.get("a", "1") == {"x": 1}


def test_model_version_change_clears() -> None:
    cache = ResponseCache(ttl_s=100, max_entries=10, clock=Clock())
    cache.put("a", "1", {"x": 1})
    assert cache.get("a", "2") is None
    assert len(cache) == 0


def test_returned_value_is_a_copy() -> None:
    cache = ResponseCache(ttl_s=100, max_entries=10, clock=Clock())
    cache.put("a", "1", {"x": 1})
    got = cache.get("a", "1")
    assert got is not None
    got["x"] = 99
    assert cache.get("a", "1") == {"x": 1}


def test_disabled_cache_stores_nothing() -> None:
    cache = ResponseCache(ttl_s=0, max_entries=10, clock=Clock())
    cache.put("a", "1", {"x": 1})
    assert len(cache) == 0
