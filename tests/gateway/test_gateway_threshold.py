"""The uncertain flag: UNCERTAIN_THRESHOLD when set, else the served model's own calibrated threshold."""

from __future__ import annotations

import numpy as np

from contract.model_info import ModelInfo
from gateway.prediction_service import FALLBACK_UNCERTAIN_THRESHOLD, prediction_body, uncertain_threshold


def _info(parameters: dict[str, str]) -> ModelInfo:
    return ModelInfo(
        name="cats_dogs",
        version="1",
        versions=("1",),
        input_name="image",
        input_datatype="UINT8",
        image_size=64,
        output_name="probabilities",
        max_batch_size=8,
        class_names=("cat", "dog"),
        parameters=parameters,
    )


def test_the_models_threshold_applies_unless_the_setting_overrides_it() -> None:
    calibrated = _info({"uncertain_threshold": "0.6439"})
    assert uncertain_threshold(None, calibrated) == 0.6439
    assert uncertain_threshold(0.9, calibrated) == 0.9
    assert uncertain_threshold(None, _info({})) == FALLBACK_UNCERTAIN_THRESHOLD
    assert (
        uncertain_threshold(None, _info({"uncertain_threshold": "garbage"})) == FALLBACK_UNCERTAIN_THRESHOLD
    )
    row = np.array([0.37, 0.63], dtype=np.float32)  # between 0.6 and 0.6439: the model's own flags it
    assert prediction_body(row, calibrated, uncertain_threshold(None, calibrated))["uncertain"] is True
    assert prediction_body(row, _info({}), uncertain_threshold(None, _info({})))["uncertain"] is False
