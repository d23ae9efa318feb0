"""TrainConfig: YAML + --set overrides, typed parsing, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, TrainConfig, load_config
from training.train import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_yaml_then_overrides_with_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: resnet18\nepochs: 3\nlr: 3e-4\namp: false\n")
    cfg = load_config(path, ["epochs=7", "lr=1e-2", "pretrained=/weights/r18.pth", "tags={team: vision}"])
    assert cfg.model == "resnet18"
    assert cfg.epochs == 7 and isinstance(cfg.epochs, int)
    assert cfg.lr == pytest.approx(0.01) and isinstance(cfg.lr, float)
    assert cfg.amp is False
    assert cfg.pretrained == "/weights/r18.pth"
    assert cfg.tags == {"team": "vision"}
    assert load_config(None, ["model=resnet18", "pretrained=true", "weight_decay=0"]).pretrained is True
    assert load_config(None, ["model=mobilenet_v3_small", "pretrained=imagenet"]).pretrained == "imagenet"


def test_unknown_key_in_yaml_names_it_and_suggests_the_close_match(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'learning_rate' in .*c\.yaml"):
        load_config(path)
    path.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"'epoch'.*did you mean 'epochs'"):
        load_config(path)


def test_bad_set_key_exits_non_zero_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", "batchsize=8"]) == 2
    err = capsys.readouterr().err
    assert "'batchsize'" in err and "batch_size" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=many", "epochs must be int"),
        ("epochs=2.5", "epochs must be int"),
        ("lr=-1", "lr: must be > 0"),
        ("model=vgg", "model: 'vgg' is not one of simple_cnn, improved_cnn, resnet18"),
        ("scheduler=step", "scheduler"),
        ("amp=maybe", "amp must be bool"),
        ("lr", "--set expects key=value"),
        ("pretrained=imagenet", "pretrained: pretrained weights exist only for resnet18, mobilenet_v3_small"),
    ],
)
def test_bad_values_are_rejected_with_the_reason(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_section_of_a_params_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("image_size: 32\ntrain:\n  model: simple_cnn\n  epochs: 2\n")
    assert load_config(path, section="train").epochs == 2
    with pytest.raises(ConfigError, match="no top-level section 'evaluate'"):
        load_config(path, section="evaluate")
    with pytest.raises(ConfigError, match="unknown config key 'train'"):
        load_config(path)


@pytest.mark.parametrize("name", ["train.yaml", "quick.yaml", "pets.yaml", "pets-pretrained.yaml"])
def test_shipped_configs_load(name: str) -> None:
    assert isinstance(load_config(PROJECT_ROOT / "configs" / name), TrainConfig)


def test_params_yaml_train_section_loads() -> None:
    assert isinstance(load_config(PROJECT_ROOT / "params.yaml", section="train"), TrainConfig)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_only_the_three_known_mlflow_notices_are_silenced(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import warnings

    from training.train import quiet_mlflow_notices

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_mlflow_notices()
        warnings.warn(
            "The specified dataset source can be interpreted in multiple ways: A, B",
            UserWarning,
            stacklevel=2,
        )
        warnings.warn("Hint: Inferred schema contains integer column(s). …", UserWarning, stacklevel=2)
        warnings.warn("something else MLflow says", UserWarning, stacklevel=2)
    assert [str(w.message) for w in seen] == ["something else MLflow says"]
    with caplog.at_level(logging.WARNING, logger="mlflow.pytorch"):
        logging.getLogger("mlflow.pytorch").warning("Saving pytorch model by Pickle or CloudPickle format …")
        logging.getLogger("mlflow.pytorch").warning("another notice")
    assert [r.getMessage() for r in caplog.records] == ["another notice"]
