"""The config parameters clients read by contract.model's names are the ones export writes: ModelFacts
writes one parameter per field, under the field's name, so a renamed field must fail here."""

from __future__ import annotations

from contract import model
from export.metadata import ModelFacts


def test_export_writes_every_model_fact_clients_read_under_its_contract_name() -> None:
    facts = ModelFacts(
        class_names=("cat", "dog"), image_size=64, mean=(0.5,) * 3, std=(0.25,) * 3, architecture="simple_cnn"
    )
    written = facts.as_strings()
    read = {
        model.CLASS_NAMES_PARAMETER: '["cat", "dog"]',
        model.IMAGE_SIZE_PARAMETER: "64",
        model.ARCHITECTURE_PARAMETER: "simple_cnn",
        model.MLFLOW_MODEL_NAME_PARAMETER: "",
        model.MLFLOW_VERSION_PARAMETER: "",
        model.MLFLOW_RUN_ID_PARAMETER: "",
        model.EXPORTED_AT_PARAMETER: "",
    }
    assert {key: written.get(key) for key in read} == read
