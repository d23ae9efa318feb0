"""The model a fresh clone serves: models/bundled/ through registry → export → Triton → gateway.

These are the steps `make up` runs on a fresh machine (serving.up's bundled pipeline), each as its
own process against a private MLflow store and repository, then real photos through the gateway.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from serving.triton import TritonLauncher
from serving.up import DEFAULT_REAL_CONFIG, pipeline_steps
from tests.support.gateway import gateway_settings, wait_ready
from tests.support.triton import triton_options
from training.bundled import BUNDLED_DIR, read_card
from training.manifest import split_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PETS_DEV = PROJECT_ROOT.parent / "shared" / "data" / "pets-dev"


def test_the_shipped_model_matches_its_card_and_recipe() -> None:
    card = read_card()  # also checks the checkpoint's sha256 against the card
    assert card["weights_dtype"] == "float16"
    assert card["metrics"]["test"]["n"] >= 200  # measured on pets-dev's whole test split
    assert 0.5 <= card["calibration"]["threshold"] < 1.0
    assert card["config_file"] == "configs/pets.yaml"


@pytest.mark.triton
@pytest.mark.slow
def test_fresh_machine_serves_the_bundled_model_and_it_knows_cats_from_dogs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_ROOT": (tmp_path / "mlartifacts").as_uri(),
    }
    repository, cpu_repository = tmp_path / "model_repository", tmp_path / "model_repository_cpu"
    for name, command in pipeline_steps("bundled", DEFAULT_REAL_CONFIG):
        if name == "export":
            command = [*command, "--repository", str(repository), "--cpu-repository", str(cpu_repository)]
        done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{name}: {done.stdout}\n{done.stderr}"
        if name == "export":
            # Gated on the figures recorded with the model, not on whatever data this machine has.
            assert "gate passed" in done.stdout and "parity" in done.stdout.lower()

    launcher = TritonLauncher(triton_options(tmp_path, cpu_repository))
    launcher.start()
    try:
        from tests.support.gateway import GatewayServer

        with GatewayServer(gateway_settings(launcher.options.grpc_url)) as server:
            client = httpx.Client(base_url=server.url, timeout=30)
            wait_ready(client, timeout_s=60)
            health = client.get("/health").json()
            card = read_card(BUNDLED_DIR)
            assert health["model"]["parameters"]["architecture"] == card["architecture"]
            # The uncertain flag follows the threshold chosen on the model's own validation split.
            served_threshold = float(health["model"]["parameters"]["uncertain_threshold"])
            assert served_threshold == pytest.approx(card["calibration"]["threshold"], abs=1e-4)
            if not PETS_DEV.is_dir():
                pytest.skip(f"real photos not present ({PETS_DEV}); the export and serving steps passed")
            # pets-dev's test split (by content hash, as ingest assigns it): the photos the card measured.
            photos = [
                p
                for p in sorted(PETS_DEV.glob("*/*.jpg"))
                if split_for(hashlib.sha256(p.read_bytes()).hexdigest()) == "test"
            ]
            card_test = read_card()["metrics"]["test"]
            assert len(photos) == card_test["n"]
            right, confident = 0, {"cat": 0, "dog": 0}
            for path in photos:
                truth = path.parent.name
                body = client.post(
                    "/predict",
                    files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                    headers={"Cache-Control": "no-cache"},
                ).json()
                right += body["predicted_class"] == truth
                confident[truth] += body["predicted_class"] == truth and body["confidence"] >= 0.8
            # The served model is the measured one: same photos, same decoder, ONNX parity <= 1e-4;
            # at most a near-0.5 answer may flip.
            assert abs(right - round(card_test["accuracy"] * len(photos))) <= 1, f"{right}/{len(photos)}"
            assert confident["cat"] >= 10 and confident["dog"] >= 10, confident
    finally:
        launcher.stop()
