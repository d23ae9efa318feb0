import json
import multiprocessing
import time
from pathlib import Path

import pytest

from tracking import PerformanceTracker, get_tracker
from tracking.stats import classification_report
from tracking.store import ConflictingLabelError, UnknownPredictionError
from tracking.tracker import parse_window


@pytest.fixture
def tracker(log_location: str) -> PerformanceTracker:
    return PerformanceTracker(log_location, ("cat", "dog"))


def test_stats_match_hand_computed_values(tracker: PerformanceTracker) -> None:
    # (predicted, true, confidence, latency)
    rows = [
        ("cat", "cat", 0.90, 10.0),
        ("cat", "dog", 0.60, 20.0),
        ("dog", "dog", 0.95, 30.0),
        ("dog", "cat", 0.55, 40.0),
        ("dog", "dog", 0.80, 50.0),
        ("cat", None, 0.70, 60.0),
    ]
    for pred, true, conf, lat in rows:
        tracker.log_prediction(pred, conf, lat, ground_truth=true)
    stats = tracker.get_current_stats()
    # labelled: 5; correct: 3 → accuracy 0.6
    quality = stats["quality"]
    assert quality["samples"] == 5
    assert quality["accuracy"] == pytest.approx(0.6)
    # cat: tp=1 fp=1 (pred cat, true dog) fn=1 (pred dog, true cat) → P=R=F1=0.5
    assert quality["per_class"]["cat"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    # dog: tp=2 fp=1 fn=1 → P=R=F1=2/3
    dog = quality["per_class"]["dog"]
    assert (dog["precision"], dog["recall"], dog["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert quality["macro"]["f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert stats["counts"] == {"predictions": 6, "labelled": 5, "by_class": {"cat": 3, "dog": 3}}
    assert stats["class_ratio"] == {"cat": 0.5, "dog": 0.5}
    assert stats["latency_ms"]["mean"] == pytest.approx(35.0)
    assert stats["latency_ms"]["p50"] == pytest.approx(35.0)
    assert stats["confidence"]["mean"] == pytest.approx(sum(r[2] for r in rows) / 6)
    assert sum(stats["confidence"]["histogram"].values()) == 6
    assert stats["confidence"]["histogram"]["0.90-0.95"] == 1


def test_empty_log_gives_nulls_not_errors(tracker: PerformanceTracker) -> None:
    stats = tracker.get_current_stats("1h")
    assert stats["counts"]["predictions"] == 0
    assert stats["quality"]["accuracy"] is None
    assert stats["latency_ms"]["p99"] is None


def test_window_excludes_older_predictions(tracker: PerformanceTracker) -> None:
    from tracking.store import PredictionRecord

    tracker.store.insert(
        PredictionRecord(id="old", predicted_class="cat", confidence=0.9, latency_ms=1, ts=0.0)
    )
    tracker.log_prediction("dog", 0.8, 2.0)
    assert tracker.get_current_stats("1h")["counts"]["predictions"] == 1
    assert tracker.get_current_stats()["counts"]["predictions"] == 2


@pytest.mark.parametrize("text", ["1x", "", "h", "0m", "-1h"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


def test_feedback_unknown_conflict_and_idempotent(tracker: PerformanceTracker) -> None:
    rid = tracker.log_prediction("cat", 0.9, 5.0, request_id="r1")
    with pytest.raises(UnknownPredictionError):
        tracker.add_feedback("nope", "cat")
    with pytest.raises(ValueError, match="unknown label"):
        tracker.add_feedback(rid, "horse")
    assert tracker.add_feedback(rid, "dog") is True
    assert tracker.add_feedback(rid, "dog") is False
    with pytest.raises(ConflictingLabelError):
        tracker.add_feedback(rid, "cat")
    assert tracker.store.get(rid)["true_label"] == "dog"


def test_snapshot_is_written_atomically_as_json(tracker: PerformanceTracker, tmp_path: Path) -> None:
    tracker.log_prediction("cat", 0.9, 5.0, ground_truth="cat")
    out = tracker.write_snapshot(tmp_path / "snap" / "stats.json")
    assert json.loads(out.read_text())["quality"]["accuracy"] == 1.0
    assert [p.name for p in out.parent.iterdir()] == ["stats.json"]


def test_retention_by_rows_and_age(tracker: PerformanceTracker) -> None:
    from tracking.store import PredictionRecord

    # 10 s apart, so the age cut below stays between rows however slow 50 commits are here.
    now = time.time()
    for i in range(50):
        tracker.store.insert(
            PredictionRecord(
                id=f"r{i}", predicted_class="cat", confidence=0.9, latency_ms=1, ts=now - 1000 + 10 * i
            )
        )
    assert tracker.store.apply_retention(max_age_s=None, max_rows=20) == 30
    assert tracker.store.count() == 20
    assert tracker.store.get("r49") is not None and tracker.store.get("r29") is None
    assert tracker.store.apply_retention(max_age_s=1000 - 400 + 5, max_rows=None) == 10
    assert tracker.store.count() == 10


def _writer(location: str, worker: int, n: int) -> None:
    tracker = PerformanceTracker(location, ("cat", "dog"))
    for i in range(n):
        rid = tracker.log_prediction("cat" if i % 2 else "dog", 0.8, 1.0, request_id=f"w{worker}-{i}")
        tracker.add_feedback(rid, "cat")


def test_several_processes_write_without_losing_rows(log_location: str) -> None:
    # Gateway workers (SQLite) or replicas (PostgreSQL) writing one log at once.
    PerformanceTracker(log_location).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(log_location, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    stats = PerformanceTracker(log_location).get_current_stats()
    assert stats["counts"]["predictions"] == 160
    assert stats["counts"]["labelled"] == 160
    assert stats["quality"]["accuracy"] == pytest.approx(0.5)


def test_get_tracker_returns_one_tracker_per_database(tmp_path: Path) -> None:
    a = get_tracker(tmp_path / "a.db")
    assert get_tracker(tmp_path / "a.db") is a
    assert get_tracker(tmp_path / "b.db") is not a


def test_classification_report_handles_missing_class() -> None:
    report = classification_report(["cat", "cat"], ["cat", "cat"], ["cat", "dog"])
    assert report["accuracy"] == 1.0
    # No dog was labelled or predicted: null, not 0.0 (which would read as "always wrong").
    assert report["per_class"]["dog"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert report["macro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # Predicted but never labelled dog: precision is a fact (0.0), recall is not.
    report = classification_report(["cat", "cat"], ["cat", "dog"], ["cat", "dog"])
    assert report["per_class"]["dog"] == {"precision": 0.0, "recall": None, "f1": None, "support": 0}


def test_labels_come_from_the_log_until_the_model_names_them(log_location: str) -> None:
    tracker = PerformanceTracker(log_location)
    assert tracker.class_names == ()
    tracker.log_prediction("dog", 0.9, 1.0)
    tracker.log_prediction("cat", 0.9, 1.0)
    assert tracker.class_names == ("cat", "dog")
    tracker.class_names = ("cat", "dog", "rabbit")
    assert tracker.class_names == ("cat", "dog", "rabbit")


def test_conflicting_labels_from_two_writers_at_once(log_location: str) -> None:
    """Two replicas labelling one prediction together: exactly one label wins, the other is refused."""
    import threading

    PerformanceTracker(log_location, ("cat", "dog")).log_prediction("cat", 0.9, 1.0, request_id="r")
    results: list[object] = []
    barrier = threading.Barrier(2)

    def label(name: str) -> None:
        tracker = PerformanceTracker(log_location, ("cat", "dog"))
        barrier.wait()
        try:
            results.append(tracker.add_feedback("r", name))
        except ConflictingLabelError as exc:
            results.append(exc.existing)
        tracker.close()

    threads = [threading.Thread(target=label, args=(n,)) for n in ("cat", "dog")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stored = PerformanceTracker(log_location).store.get("r")
    assert stored is not None
    assert sorted(map(str, results)) == sorted(["True", stored["true_label"]])


def test_a_log_without_client_request_id_gains_the_column(tmp_path: Path) -> None:
    """A SQLite log written before the column existed is migrated in place, its rows kept."""
    import sqlite3

    from tracking.store import COLUMNS

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE predictions (id TEXT PRIMARY KEY, ts REAL NOT NULL, model_version TEXT,"
            " predicted_class TEXT NOT NULL, confidence REAL NOT NULL, latency_ms REAL NOT NULL,"
            " image_sha256 TEXT, image_bytes INTEGER, image_width INTEGER, image_height INTEGER,"
            " brightness REAL, true_label TEXT, labelled_at REAL)"
        )
        conn.execute(
            "INSERT INTO predictions (id, ts, predicted_class, confidence, latency_ms)"
            " VALUES ('old', 1.0, 'cat', 0.9, 1.0)"
        )
    tracker = PerformanceTracker(db, ("cat", "dog"))
    row = tracker.store.get("old")
    assert row is not None and set(row) == {c[0] for c in COLUMNS}
    assert tracker.add_feedback("old", "cat") is True


def _fill(store: object, n: int, labelled_every: int = 7) -> None:
    from tracking.store import PredictionRecord, PredictionStore

    assert isinstance(store, PredictionStore)
    rng = __import__("random").Random(3)
    store.record_many(
        [
            PredictionRecord(
                id=f"r{i}",
                predicted_class="cat" if rng.random() < 0.4 else "dog",
                confidence=round(0.5 + rng.random() / 2, 4),
                latency_ms=round(rng.random() * 90, 3),
                true_label=("cat" if rng.random() < 0.5 else "dog") if i % labelled_every == 0 else None,
                ts=1_000.0 + i,
            )
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("since", [None, 1_300.0], ids=["whole log", "window"])
def test_streamed_window_gives_the_same_stats_as_the_rows(log_location: str, since: float | None) -> None:
    from tracking.stats import compute_stats, stats_from_columns
    from tracking.store import open_store

    store = open_store(log_location)
    try:
        _fill(store, 500)
        streamed = stats_from_columns(store.window_columns(since), ("cat", "dog"))
        assert streamed == compute_stats(store.rows_since(since), ("cat", "dog"))
        assert streamed["counts"]["predictions"] == (500 if since is None else 200)
    finally:
        store.close()


def test_stats_over_a_large_window_do_not_hold_a_python_object_per_row(tmp_path: Path) -> None:
    """The gauges' recomputation must not grow the gateway's memory with the log (make rss-probe)."""
    import tracemalloc

    rows = 20_000
    tracker = PerformanceTracker(tmp_path / "big.db", ("cat", "dog"))
    try:
        _fill(tracker.store, rows, labelled_every=100)
        tracemalloc.start()
        try:
            stats = tracker.get_current_stats()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert stats["counts"]["predictions"] == rows
        # Two float64 arrays are 16 bytes a row (doubled while growing); a dict per row was ~400.
        assert peak < 100 * rows, f"peak {peak / rows:.0f} bytes per row"
    finally:
        tracker.close()
