import dataclasses
import json

import pytest

from emotive import configs
from emotive.configs import base
from emotive.configs.common import MeshConfig
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


# ----------------------------------------------------------------- self-validating configs
# One invalid setting per section type that has its own validate(): (key inside the
# section, value, part of the UserError). No experiment's validate() calls these any more;
# base.check finds each section wherever it sits in the tree.
SECTION_CASES = {
    "TransformerConfig": ("num_layers", "0", "num_layers must be positive, got 0"),
    "OptimConfig": ("grad_accum", "0", "optim.grad_accum must be >= 1, got 0"),
    "TrainConfig": ("steps", "0", "train.steps and train.batch_size must be >= 1"),
    "CodecModelConfig": ("activation", "relu", "model.activation must be snake or gelu"),
    "DiscriminatorConfig": ("spec_hops", "128,256,512,1024", "disc.spec_n_ffts and disc.spec_hops"),
    "CodecLossConfig": ("mel_n_mels", "20", "loss.mel_n_ffts and loss.mel_n_mels need the same"),
    "SemanticConfig": ("weight", "-1", "semantic.weight must be >= 0, got -1"),
    "MelEncoderConfig": ("feature_norm", "global", "feature_norm must be 'bin' or 'utterance'"),
    "AsrModelConfig": ("upsample", "0", "model.upsample must be >= 1, got 0"),
    "SpeakerModelConfig": ("embed_dim", "0", "model.embed_dim must be >= 1"),
    "Wav2Vec2Config": ("pos_conv_groups", "5", "must be a multiple of pos_conv_groups=5"),
    "Wav2SmallConfig": ("pool_after", "0", "pool_after=0 must be in [1, blocks="),
    "EmotionDataConfig": ("crop_seconds", "0", "data.crop_seconds must be positive, got 0"),
    "SerLossConfig": ("label_smoothing", "1", "loss.label_smoothing must be in [0, 1)"),
    "StudentLossConfig": ("temperature", "0", "loss.temperature must be positive, got 0"),
    "TTSVocabConfig": ("codebook_size", "0", "vocab.codebook_size must be positive"),
    "TTSDataConfig": ("seq_len", "4", "data.seq_len=4 is too short for a prompt"),
    "MotionDataConfig": ("window_frames", "24", "data.window_frames must be a multiple of 16"),
    "MotionVAEModelConfig": ("latent_dim", "0", "model.latent_dim, model.downsample"),
    "MotionVAELossConfig": ("kl_weight", "-1", "loss.kl_weight and loss.velocity_weight"),
    "DenoiserConfig": ("transformer.cross_attention", "false", "cross_attention=true"),
    "DiffusionConfig": ("sample_steps", "0", "diffusion.sample_steps must be in [1, 1000]"),
    "GuidanceConfig": ("all_dropout", "1", "guidance.all_dropout must be in [0, 1)"),
    "AugmentConfig": ("noise_prob", "1.5", "augment.noise_prob must be in [0, 1]"),
}


def _sections(cfg, prefix=""):
    """(dotted path, section) of every nested config below `cfg`."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if base.is_config(value):
            yield prefix + f.name, value
            yield from _sections(value, prefix + f.name + ".")


def _section_cases():
    cases = []
    for name in sorted(configs.EXPERIMENTS):
        for preset, factory in configs.presets(name).items():
            for path, section in _sections(factory()):
                kind = type(section).__name__
                if kind in SECTION_CASES:
                    key, value, expected = SECTION_CASES[kind]
                    cases.append(pytest.param(name, preset, f"{path}.{key}={value}", expected,
                                              id=f"{name}-{preset}-{path}"))
    return cases


def test_every_section_with_a_validate_has_a_case():
    kinds = {type(s) for name in configs.EXPERIMENTS
             for factory in configs.presets(name).values() for _, s in _sections(factory())}
    checked = {k.__name__ for k in kinds if callable(getattr(k, "validate", None))}
    assert checked <= set(SECTION_CASES), sorted(checked - set(SECTION_CASES))
    # Every case is reached from some preset, and the walk sees the deep ones.
    assert set(SECTION_CASES) <= checked
    paths = {c.values[2].partition("=")[0] for c in _section_cases()}
    assert {"model.encoder.transformer.num_layers", "model.transformer.num_layers",
            "model.decoder.num_layers", "loss.temperature"} <= paths


@pytest.mark.parametrize("name, preset, item, expected", _section_cases())
def test_every_section_is_validated_wherever_it_sits(name, preset, item, expected):
    configs.load(name, preset)  # the preset itself is valid
    with pytest.raises(UserError) as err:
        configs.load(name, preset, [item])
    assert expected in str(err.value)


@pytest.mark.parametrize("name, preset, item, expected", _section_cases())
def test_from_dict_of_an_invalid_json_config_raises(name, preset, item, expected):
    key, _, text = item.partition("=")
    cfg = base.override(configs.presets(name)[preset](), key, text)  # override never checks
    raw = json.loads(base.to_json(cfg))
    with pytest.raises(UserError) as err:
        base.from_dict(type(cfg), raw)
    assert expected in str(err.value)


def test_from_dict_checks_cross_section_rules_too():
    raw = base.to_dict(configs.load("toy_lm", "tiny"))
    raw["data"]["min_len"] = raw["data"]["max_len"] + 1
    with pytest.raises(UserError, match="data.min_len must be between 1 and data.max_len"):
        base.from_dict(type(configs.load("toy_lm")), raw)


# A made-up config with sections nobody chains by hand, one of them inside a tuple.
CALLS = []


@dataclasses.dataclass(frozen=True)
class _Leaf:
    x: int = 1

    def validate(self) -> None:
        CALLS.append(f"leaf {self.x}")
        if self.x < 0:
            raise UserError(f"leaf.x must be >= 0, got {self.x}")


@dataclasses.dataclass(frozen=True)
class _Branch:
    leaf: _Leaf = _Leaf()
    leaves: tuple[_Leaf, ...] = (_Leaf(2), _Leaf(3))

    def validate(self) -> None:
        CALLS.append("branch")


@dataclasses.dataclass(frozen=True)
class _Root:  # no validate() of its own
    branch: _Branch = _Branch()
    mesh: MeshConfig = MeshConfig()  # a section without a validate()


def test_check_walks_the_tree_bottom_up_including_tuples():
    CALLS.clear()
    cfg = _Root()
    assert base.check(cfg) is cfg
    assert CALLS == ["leaf 1", "leaf 2", "leaf 3", "branch"]
    with pytest.raises(UserError, match="leaf.x must be >= 0, got -1"):
        base.apply_overrides(cfg, ["branch.leaf.x=-1"])
    with pytest.raises(UserError, match="leaf.x must be >= 0, got -3"):
        base.check(_Root(_Branch(leaves=(_Leaf(0), _Leaf(-3)))))


def test_from_dict_rebuilds_and_checks_sections_inside_tuples():
    raw = json.loads(base.to_json(_Root()))
    assert base.from_dict(_Root, raw) == _Root()
    raw["branch"]["leaves"][1]["x"] = -5
    with pytest.raises(UserError, match="leaf.x must be >= 0, got -5"):
        base.from_dict(_Root, raw)
