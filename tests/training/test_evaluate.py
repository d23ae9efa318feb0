"""Evaluation: test metrics → metrics.json + MLflow, and @champion moves only on improvement."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training import registry
from training.dataset import Sample
from training.evaluate import main, per_source_metrics
from training.metrics import classification_metrics


def _alias(client: Any, alias: str) -> str:
    version = registry.version_by_alias(client, alias)
    assert version is not None, alias
    return str(version.version)


def _evaluate(prepared: Any, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[dict, str]:
    rc = main(
        [
            *extra,
            "--manifest",
            str(prepared.manifest),
            "--cache-dir",
            str(prepared.cache_dir),
            "--metrics",
            str(out / "metrics.json"),
            "--plots-dir",
            str(out / "plots"),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    return json.loads((out / "metrics.json").read_text()), printed


@pytest.mark.slow
def test_champion_moves_only_when_the_challenger_beats_it_on_the_test_split(
    trained: Any,
    prepared_data: Any,
    quick_config: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from training.train import train

    client = registry.get_client()
    strong = trained.model_version

    # 1. No champion yet: the trained challenger becomes champion.
    metrics, printed = _evaluate(prepared_data, tmp_path, capsys)
    assert "promoted" in printed and "no champion existed" in printed
    assert _alias(client, registry.CHAMPION) == strong
    assert metrics["version"] == strong and metrics["n"] > 0
    assert metrics["accuracy"] >= 0.85
    assert set(metrics["per_class"]) == {"cat", "dog"}
    assert (tmp_path / "plots" / "confusion_matrix_test.png").stat().st_size > 0
    run = client.get_run(trained.run_id)
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    for key in ("test_f1_macro", "test_precision_macro", "test_recall_macro"):
        assert key in run.data.metrics

    # 2. A barely trained challenger does not displace it.
    weak_cfg = quick_config(prepared_data, tmp_path / "weak", epochs=1, max_train_batches=1, lr=1e-6)
    weak = train(weak_cfg).model_version
    assert _alias(client, registry.CHALLENGER) == weak
    weak_metrics, printed = _evaluate(prepared_data, tmp_path, capsys)
    assert "not promoted" in printed and "does not beat" in printed
    assert weak_metrics["accuracy"] < metrics["accuracy"]
    assert _alias(client, registry.CHAMPION) == strong

    # 3. With the weak model as champion, the better one takes over (both scored on the same images).
    registry.set_alias(client, registry.CHAMPION, weak)
    _, printed = _evaluate(prepared_data, tmp_path, capsys, "--checkpoint", str(trained.checkpoint))
    assert "promoted" in printed and "beats the champion" in printed
    assert _alias(client, registry.CHAMPION) == strong

    # 4. Evaluating the champion itself changes nothing.
    registry.set_alias(client, registry.CHALLENGER, strong)
    _, printed = _evaluate(prepared_data, tmp_path, capsys)
    assert "already is @champion" in printed
    assert _alias(client, registry.CHAMPION) == strong


def test_missing_challenger_is_a_clear_error(
    mlflow_store: str, prepared_data: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "--alias",
            "no-such-alias",
            "--manifest",
            str(prepared_data.manifest),
            "--cache-dir",
            str(prepared_data.cache_dir),
            "--metrics",
            str(tmp_path / "metrics.json"),
        ]
    )
    assert rc == 1
    assert "@no-such-alias" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


def test_per_source_breakdown_uses_file_name_tags_and_skips_untagged_names() -> None:
    samples = [
        Sample("a", 0, "cat/chkt_cat.1.jpg", "chkt"),
        Sample("b", 1, "dog/chkt_dog.1.jpg", "chkt"),
        Sample("c", 0, "cat/rvp_cat.2.jpg", "rvp"),
        Sample("d", 1, "dog/dog_00001.png", ""),
    ]
    y_true = np.array([0, 1, 0, 1])
    y_pred = np.array([0, 0, 0, 1])
    out = per_source_metrics(samples, y_true, y_pred, ("cat", "dog"))
    assert set(out) == {"chkt", "rvp"}
    assert out["chkt"] == {"accuracy": 0.5, "f1_macro": pytest.approx(1 / 3), "n": 2}
    assert out["rvp"]["accuracy"] == 1.0


def test_classification_metrics_match_hand_counts() -> None:
    # 3 cats (2 right), 2 dogs (1 right): cat P=2/3 R=2/3, dog P=1/2 R=1/2.
    m = classification_metrics(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 0]), ("cat", "dog"))
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_class"]["cat"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["dog"]["recall"] == pytest.approx(1 / 2)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]
    # A class that is never predicted scores 0, not NaN.
    m = classification_metrics(np.array([0, 1]), np.array([0, 0]), ("cat", "dog"))
    assert m["per_class"]["dog"]["precision"] == 0.0
