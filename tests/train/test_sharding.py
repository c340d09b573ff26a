"""The same training run on 1 device and on 8 simulated devices in several mesh shapes."""

import json

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from emotive import configs
from emotive.errors import UserError
from emotive.models.sharding import logical_to_spec
from emotive.train.mesh import make_mesh
from emotive.configs.common import MeshConfig
from emotive.train.trainer import train

STEPS = 4
OVERRIDES = [f"train.steps={STEPS}", "train.log_every=1", "train.eval_every=0",
             "train.ckpt_every=0", "train.batch_size=16", "model.mlp_dim=128",
             "optim.warmup_steps=1", "optim.lr=1e-2"]


def _run(tmp_path, name, mesh, devices):
    cfg = configs.load("toy_lm", "tiny", OVERRIDES + [f"mesh.data={mesh[0]}",
                                                      f"mesh.fsdp={mesh[1]}",
                                                      f"mesh.tensor={mesh[2]}"])
    summary = train(cfg, tmp_path / name, progress=False, devices=devices)
    lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line)["loss"] for line in lines]
    return losses, summary["state"]


@pytest.fixture(scope="module")
def single_device_losses(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("one"), "one", (1, 1, 1), jax.devices()[:1])[0]


@pytest.mark.parametrize("mesh", [(8, 1, 1), (2, 4, 1), (2, 2, 2)])
def test_sharded_training_matches_one_device(tmp_path, mesh, single_device_losses):
    assert len(jax.devices()) == 8
    losses, state = _run(tmp_path, "run", mesh, jax.devices())
    assert len(losses) == STEPS
    np.testing.assert_allclose(losses, single_device_losses, atol=1e-5, rtol=0)
    assert losses[-1] < losses[0]  # it trains
    # parameter shardings follow the rules table: embed -> fsdp, mlp/heads -> tensor
    params = state["params"]["model"]
    up = params["body"]["blocks"][0]["mlp"]["up"]["kernel"]
    q = params["body"]["blocks"][0]["attn"]["q"]["kernel"]
    mesh_obj = up.sharding.mesh
    expected_up = logical_to_spec(("embed", "mlp"), up.shape, mesh_obj)
    assert up.sharding.spec == expected_up
    assert q.sharding.spec == logical_to_spec(("embed", "heads", "head_dim"), q.shape, mesh_obj)
    if mesh == (2, 2, 2):
        assert up.sharding.spec == P("fsdp", "tensor")
        assert q.sharding.spec == P("fsdp", "tensor", None)
    if mesh == (8, 1, 1):
        assert up.sharding.spec == P(None, None)


def test_rules_skip_mesh_axes_that_do_not_divide_a_dimension():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    assert logical_to_spec(("vocab", "embed"), (193_801, 64), mesh) == P(None, "fsdp")
    assert logical_to_spec(("batch", "length"), (8, 5), mesh) == P(("data", "fsdp"), None)
    assert logical_to_spec(("batch",), (2,), mesh) == P("data")


@pytest.mark.parametrize("mesh, message", [
    (MeshConfig(data=3, fsdp=1, tensor=1), "needs 3 devices but 8 are available"),
    (MeshConfig(data=-1, fsdp=3, tensor=1), "does not divide the 8 devices"),
    (MeshConfig(data=-1, fsdp=-1, tensor=1), "at most one axis may be -1"),
])
def test_bad_meshes_are_rejected_with_a_message(mesh, message):
    with pytest.raises(UserError, match=message):
        make_mesh(mesh)
