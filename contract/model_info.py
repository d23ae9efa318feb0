"""What a client needs to know about the served model, read from Triton's metadata and config.

One reading for every client (the gateway, bulk scoring, the benchmarks), so they agree on what a
servable model is: one UINT8 [N, S, S, 3] (NHWC RGB) input, one output, ``class_names`` in the config
parameters, and the highest loaded version answering.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contract.model import (
    CLASS_NAMES_PARAMETER,
    IMAGE_SIZE_PARAMETER,
    INPUT_DATATYPE,
    MLFLOW_VERSION_PARAMETER,
)

_REEXPORT = "re-export it with `python -m export`"


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    name: str
    version: str  # the highest loaded version: the one Triton's latest policy answers with
    versions: tuple[str, ...]  # every loaded version, in version order
    input_name: str
    image_size: int
    output_name: str
    # The most images one request may carry: Triton's max_batch_size, or 1 for a model Triton does not
    # batch (max_batch_size 0); ``batching`` tells the two apart.
    max_batch_size: int
    class_names: tuple[str, ...]
    parameters: dict[str, str] = field(default_factory=dict)  # config parameters, as strings
    batching: bool = True
    input_datatype: str = INPUT_DATATYPE

    @property
    def mlflow_version(self) -> str | None:
        """The MLflow registered-model version the served version was exported from, if known."""
        return self.parameters.get(MLFLOW_VERSION_PARAMETER) or None

    def as_dict(self) -> dict[str, Any]:
        """The gateway's ``GET /model`` description."""
        return {
            "name": self.name,
            "version": self.version,
            "input": {
                "name": self.input_name,
                "datatype": self.input_datatype,
                "shape": [-1, self.image_size, self.image_size, 3],
            },
            "output": self.output_name,
            "max_batch_size": self.max_batch_size,
            "class_names": list(self.class_names),
            "parameters": self.parameters,
        }


def version_order(versions: Iterable[Any]) -> tuple[str, ...]:
    """Versions as strings, in numeric order ("9" before "10"); a non-numeric one sorts first."""
    return tuple(sorted((str(v) for v in versions), key=_version_key))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def parse_model_info(name: str, metadata: dict[str, Any], config: dict[str, Any]) -> ModelInfo:
    """Model metadata + config (the JSON forms both protocols return) → ModelInfo.

    Raises ValueError naming what is wrong and what to do, for a model no client could use.
    """
    inputs = metadata.get("inputs") or []
    outputs = metadata.get("outputs") or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"model {name!r} must have one input and one output, "
            f"has {len(inputs)}/{len(outputs)}; {_REEXPORT}"
        )
    parameters = {
        key: str(value.get("string_value", "")) for key, value in (config.get("parameters") or {}).items()
    }
    datatype = str(inputs[0].get("datatype", ""))
    shape = [int(d) for d in inputs[0].get("shape") or []]
    if datatype != INPUT_DATATYPE or len(shape) != 4 or shape[-1] != 3:
        raise ValueError(
            f"model {name!r}: input must be {INPUT_DATATYPE} [N,S,S,3] (NHWC RGB), "
            f"got {datatype or '?'} {shape}; {_REEXPORT}"
        )
    image_size = _image_size(name, shape, parameters)
    class_names = _class_names(name, parameters)
    versions = version_order(metadata.get("versions") or [])
    if not versions:
        raise ValueError(
            f"model {name!r} has no loaded version; check Triton's log for why it failed to load"
        )
    # gRPC's JSON leaves max_batch_size out when it is 0: the model does not batch, one image a request.
    triton_max_batch = int(config.get("max_batch_size") or 0)
    return ModelInfo(
        name=name,
        version=versions[-1],
        versions=versions,
        input_name=str(inputs[0]["name"]),
        input_datatype=datatype,
        image_size=image_size,
        output_name=str(outputs[0]["name"]),
        max_batch_size=max(triton_max_batch, 1),
        batching=triton_max_batch > 0,
        class_names=class_names,
        parameters=parameters,
    )


def _image_size(name: str, shape: list[int], parameters: dict[str, str]) -> int:
    """The fixed spatial side of the input, or the ``image_size`` parameter when the graph leaves it open."""
    fixed = {d for d in shape[1:3] if d > 0}
    if len(fixed) > 1:
        raise ValueError(f"model {name!r}: input must be square, got {shape}; {_REEXPORT}")
    if fixed:
        return fixed.pop()
    raw = parameters.get(IMAGE_SIZE_PARAMETER, "")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"model {name!r}: input shape {shape} has no fixed image size and no "
            f"{IMAGE_SIZE_PARAMETER!r} parameter; {_REEXPORT}"
        )
    return int(raw)


def _class_names(name: str, parameters: dict[str, str]) -> tuple[str, ...]:
    raw = parameters.get(CLASS_NAMES_PARAMETER)
    if not raw:
        raise ValueError(f"model {name!r}: config has no {CLASS_NAMES_PARAMETER!r} parameter; {_REEXPORT}")
    try:
        names = json.loads(raw)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not names:
        raise ValueError(
            f"model {name!r}: the {CLASS_NAMES_PARAMETER!r} parameter must be a JSON list of names, "
            f"got {raw!r}; {_REEXPORT}"
        )
    return tuple(str(c) for c in names)
