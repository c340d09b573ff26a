import dataclasses

import pytest

from emotive import configs
from emotive.configs import base
from emotive.errors import UserError


@pytest.mark.parametrize("name", sorted(configs.EXPERIMENTS))
def test_every_preset_loads_and_round_trips_through_json(name):
    for preset, factory in configs.presets(name).items():
        cfg = configs.load(name, preset)
        assert cfg == factory()
        again = base.from_dict(type(cfg), base.to_dict(cfg))
        assert again == cfg, preset


def test_overrides_parse_by_declared_type():
    cfg = configs.load("toy_lm", "tiny", ["model.num_layers=4", "optim.lr=3e-4",
                                          "model.mlp_type=gelu", "train.async_ckpt=false",
                                          "mesh.fsdp=2"])
    assert cfg.model.num_layers == 4 and isinstance(cfg.model.num_layers, int)
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.model.mlp_type == "gelu"
    assert cfg.train.async_ckpt is False
    assert cfg.mesh.fsdp == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.num_layers = 3


@pytest.mark.parametrize("item, expected", [
    ("model.num_layerz=4", "unknown config key 'model.num_layerz'; valid keys: "),
    ("model.num_layers=four", "bad value 'four' for config key 'model.num_layers': expected int"),
    ("model.mlp_type=relu", "expected one of swiglu, gelu"),
    ("model=3", "is a section"),
    ("optim.lr", "expected key=value"),
    ("model.num_heads=5", "must be a multiple of model.num_kv_heads"),
])
def test_bad_overrides_name_the_problem_and_the_valid_keys(item, expected):
    with pytest.raises(UserError) as err:
        configs.load("toy_lm", "tiny", [item])
    message = str(err.value)
    assert expected in message
    assert "\n" not in message
    if "unknown" in expected:
        assert "model.num_layers" in message and "model.d_model" in message


def test_unknown_config_and_preset():
    with pytest.raises(UserError, match="unknown config 'nope'; available: .*toy_lm"):
        configs.load("nope")
    with pytest.raises(UserError, match="unknown preset 'huge' for config 'toy_lm'"):
        configs.load("toy_lm", "huge")
