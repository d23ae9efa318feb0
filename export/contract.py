"""Export's own constants: the ONNX opset and the gates' defaults.

The served model's names (tensors, files, config parameters, the Triton model name) are the
project-wide contract in ``contract.model``; they are named here too, for the code and tests that
know them by this module.
"""

from __future__ import annotations

from contract.model import BASELINE_FILENAME as BASELINE_FILENAME
from contract.model import BATCH_DIM_NAME as BATCH_DIM_NAME
from contract.model import CONFIG_FILENAME as CONFIG_FILENAME
from contract.model import INPUT_NAME as INPUT_NAME
from contract.model import LABELS_FILENAME as LABELS_FILENAME
from contract.model import MODEL_NAME as MODEL_NAME
from contract.model import ONNX_FILENAME as ONNX_FILENAME
from contract.model import OUTPUT_NAME as OUTPUT_NAME
from contract.model import UNCERTAIN_THRESHOLD_METRIC as UNCERTAIN_THRESHOLD_METRIC
from contract.model import UNCERTAIN_THRESHOLD_PARAMETER as UNCERTAIN_THRESHOLD_PARAMETER
from contract.model import VERSIONS_FILENAME as VERSIONS_FILENAME
from contract.model import model_dir as model_dir

OPSET = 18

# Gate defaults (overridable on the command line; the floor also from params.yaml export.min_accuracy).
DEFAULT_MIN_ACCURACY = 0.8
MIN_PARITY_IMAGES = 64
