"""The rig's twin_dynamics section reaches the compiled twin and the env's command path."""

import numpy as np
import pytest
import yaml

from tether.config import ConfigError, load_rig, parse_rig, resolve_rig_path
from tether.sim2real.twin.env import TwinEnv
from tether.sim2real.twin.sim import TwinSim


def rig_with(**dynamics):
    data = yaml.safe_load(resolve_rig_path("twin_panda").read_text())
    data["twin_dynamics"] = dynamics
    return parse_rig(data)


def arm_values(sim: TwinSim) -> dict[str, np.ndarray]:
    model, dofs, actuators = sim.model, sim.controller.dof_index, sim.controller.actuators
    return {
        "damping": model.dof_damping[dofs].copy(),
        "armature": model.dof_armature[dofs].copy(),
        "friction": model.dof_frictionloss[dofs].copy(),
        "kp": model.actuator_gainprm[actuators, 0].copy(),
        "kv": -model.actuator_biasprm[actuators, 2].copy(),
    }


def test_rigs_without_the_section_keep_todays_twin():
    values = arm_values(TwinSim(load_rig("twin_panda"), "pick_cube"))
    np.testing.assert_array_equal(values["damping"], 2.0)
    np.testing.assert_array_equal(values["armature"], 0.1)
    np.testing.assert_array_equal(values["friction"], 0.0)
    np.testing.assert_allclose(values["kp"], [2000.0] * 4 + [666.7] * 3)
    assert np.all(values["kv"] > 0)  # critically damped controller, as compiled from dampratio 1


def test_identified_values_reach_the_model():
    nominal = arm_values(TwinSim(load_rig("twin_panda"), "pick_cube"))
    rig = rig_with(joint_damping=5.0, joint_armature=0.2, joint_friction=0.3, stiffness_scale=0.5, damping_ratio=1.0)
    values = arm_values(TwinSim(rig, "pick_cube"))
    np.testing.assert_array_equal(values["damping"], 5.0)
    np.testing.assert_array_equal(values["armature"], 0.2)
    np.testing.assert_array_equal(values["friction"], 0.3)
    np.testing.assert_allclose(values["kp"], 0.5 * nominal["kp"])
    doubled = arm_values(TwinSim(rig_with(joint_armature=0.2, stiffness_scale=0.5, damping_ratio=2.0), "pick_cube"))
    np.testing.assert_allclose(doubled["kv"], 2.0 * values["kv"])  # kv is linear in the damping ratio


def test_command_latency_shifts_the_env_by_whole_steps():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(8, 4)).astype(np.float32)
    late = TwinEnv(rig=rig_with(command_latency_steps=2))
    prompt = TwinEnv(rig=load_rig("twin_panda"))
    late.reset(seed=0)
    prompt.reset(seed=0)
    # The late arm holds for two periods, then acts as a prompt one given two zero actions first.
    held = np.zeros((2, 4), np.float32)
    late_tcp = [late.step(a)[0]["state/tcp_pose"] for a in actions]
    prompt_tcp = [prompt.step(a)[0]["state/tcp_pose"] for a in np.concatenate([held, actions[:-2]])]
    np.testing.assert_array_equal(late_tcp, prompt_tcp)
    assert np.linalg.norm(late_tcp[-1][:3] - late_tcp[1][:3]) > 0.01  # and it did move


def test_out_of_range_dynamics_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"twin_dynamics.stiffness_scale: .*greater than 0") as error:
        rig_with(stiffness_scale=0.0)
    assert "\n" not in str(error.value)
