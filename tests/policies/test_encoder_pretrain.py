"""`tether train encoder`: the debug run's weights file, the shipped twin encoder, and that pretraining learns."""

from __future__ import annotations

import json

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from tether.cli import app
from tether.cli.train import ENCODER_FILE, ENCODER_REPORT, scripted_operator
from tether.policies.encoder_pretrain import (
    EncoderPretrainConfig, RidgeProbe, collect_frames, new_encoder, pretrain, probe_scores,
)
from tether.policies.networks import (
    POOL_TEMPERATURE, TWIN_ENCODER, ConvTrunk, EncoderConfig, SpatialSoftmax, load_backbone,
)
from tether.sim2real.twin import make_env

torch.set_num_threads(1)
runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})


def check_weights(path) -> dict[str, str]:
    """The file holds exactly the default trunk's tensors (names and shapes) plus the pool temperature; returns its
    metadata."""
    tensors = load_file(str(path))
    expected = ConvTrunk(EncoderConfig()).state_dict()
    assert set(tensors) == set(expected) | {POOL_TEMPERATURE}
    for name, tensor in expected.items():
        assert tensors[name].shape == tensor.shape, name
    assert tensors[POOL_TEMPERATURE].shape == () and torch.isfinite(tensors[POOL_TEMPERATURE])
    trunk = ConvTrunk(EncoderConfig())
    trunk.load_state_dict({k: v for k, v in tensors.items() if k != POOL_TEMPERATURE})  # strict
    with safe_open(str(path), "pt") as file:
        return file.metadata()


def test_debug_run_writes_the_trunk_reproducibly(tmp_path) -> None:
    out = tmp_path / "encoder"
    args = ["train", "encoder", "--debug", "--seed", "3", "--out", str(out)]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pretrained, validation" in result.output and "random_init, shifted" in result.output
    metadata = check_weights(out / ENCODER_FILE)
    trunk = json.loads(metadata["trunk"])
    assert (trunk["channels"], trunk["kernels"], trunk["strides"], trunk["groups"]) == (
        [32, 32, 32, 32], [4, 3, 3, 3], [4, 2, 1, 1], 8)
    assert json.loads(metadata["image_size"]) == [128, 128] and metadata["seed"] == "3"
    assert json.loads(metadata["data"])["cameras"] == ["front", "wrist"]
    report = json.loads((out / ENCODER_REPORT).read_text())
    assert report["command"] == "tether train encoder --debug --seed 3 --threads 1"
    assert json.loads(metadata["validation"]) == report["probe"]
    assert set(report["probe"]["pretrained"]) == {"validation", "shifted", "shifted_transfer"}

    first = load_file(str(out / ENCODER_FILE))
    again = runner.invoke(app, [*args, "--force"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    second = load_file(str(out / ENCODER_FILE))
    assert all(torch.equal(first[name], second[name]) for name in first)  # same seed, same weights
    assert check_weights(out / ENCODER_FILE) == metadata  # and the same numbers
    refused = runner.invoke(app, args)
    assert refused.exit_code != 0 and "exists already" in refused.output


def test_the_shipped_twin_encoder_fits_the_default_trunk() -> None:
    assert TWIN_ENCODER.is_file() and TWIN_ENCODER.stat().st_size < 2_000_000
    metadata = check_weights(TWIN_ENCODER)
    pool = SpatialSoftmax(11, 11)
    load_backbone(ConvTrunk(EncoderConfig()), TWIN_ENCODER, pool)  # the agent's loader takes it, temperature too
    assert pool.log_temperature.item() == load_file(str(TWIN_ENCODER))[POOL_TEMPERATURE].item() != 0.0
    probe = json.loads(metadata["validation"])
    pretrained, random_init = probe["pretrained"]["validation"], probe["random_init"]["validation"]
    assert pretrained["cube_pos"]["rmse_mm"] < random_init["cube_pos"]["rmse_mm"]
    report = json.loads(TWIN_ENCODER.with_suffix(".json").read_text())
    assert report["probe"] == probe and report["command"].startswith("tether train encoder")


def test_pretraining_lowers_the_supervised_loss() -> None:
    config = EncoderPretrainConfig(episode_steps=24, frame_stride=2, steps=80, batch_size=8, lr=3e-3)
    env = make_env("pick_cube", rig="twin_panda", obs_mode="all")
    frames = collect_frames(env, scripted_operator(env, 0), 2, config, seed=0, randomization=config.randomization,
                            progress=False)
    env.close()
    assert frames.images.shape == (24, 2, 128, 128, 3) and frames.labels.shape == (24, 10)
    history = pretrain(new_encoder(128, 128, seed=0), frames, config, seed=0, progress=False)
    supervised = [step["supervised"] for step in history]
    assert np.mean(supervised[-10:]) < 0.5 * np.mean(supervised[:10])


def test_the_ridge_probe_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 16))
    labels = features @ rng.normal(size=(16, 6)) * 0.01 + 0.5
    groups = np.arange(200) // 10
    probe = RidgeProbe.fit_cv(features[:200], labels[:200], groups)
    scores = probe_scores(probe.predict(features[200:]), labels[200:])
    assert scores["cube_pos"]["rmse_mm"] < 0.1 and scores["tcp_pos"]["r2"] > 0.999
    # Labels that the features do not predict: cross-validation picks the strongest penalty, a near-constant probe.
    noise = rng.normal(size=(200, 6))
    assert np.abs(RidgeProbe.fit_cv(features[:200], noise, groups).weights[:-1]).max() < 0.02
    # The metrics: 3 mm off along x on the cube, exact on the TCP.
    off = labels.copy()
    off[:, 0] += 0.003
    scores = probe_scores(off, labels)
    assert scores["cube_pos"]["rmse_mm"] == 3.0 and scores["tcp_pos"] == {"rmse_mm": 0.0, "r2": 1.0}
    assert probe_scores(np.zeros_like(labels), labels)["cube_pos"]["r2"] < 0


def test_bad_encoder_options_are_one_line_errors(tmp_path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("encoder:\n  excursion_steps: [5, 2]\n")
    bad = runner.invoke(app, ["train", "encoder", "--config", str(config), "--out", str(tmp_path / "out")])
    assert bad.exit_code == 2 and "encoder: excursion_steps: Value error, need 1 <= low <= high, got [5, 2]" in bad.output
    bad = runner.invoke(app, ["train", "encoder", "--rig", "no_such_rig", "--out", str(tmp_path / "out")])
    assert bad.exit_code == 2 and "no_such_rig" in bad.output and not (tmp_path / "out").exists()
