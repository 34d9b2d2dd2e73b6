"""Domain randomisation of the twin, applied at every reset from the rig's ranges.

Physical parameters (friction, masses, damping, actuator gains), cameras (pose, field of
view), lights and colours are resampled around the nominal values kept from the compiled
model, so repeated resets never drift. Action latency, observation noise and the perception
errors of the task's perceived keys are drawn here too, and applied by the env.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from tether.config import RandomizationConfig, Range


@dataclass(frozen=True)
class EpisodeDraw:
    """What one episode drew besides model parameters."""

    action_latency: int
    obs_noise_std: float
    object_pos_noise_std: float = 0.0
    object_dropout: float = 0.0


def _scale(rng: np.random.Generator, rng_range: Range) -> float:
    return float(rng.uniform(rng_range.low, rng_range.high))


class DomainRandomizer:
    """Holds the nominal model values and writes a fresh draw into the model."""

    def __init__(
        self,
        model: mujoco.MjModel,
        config: RandomizationConfig,
        object_bodies: list[int],
        colored_geoms: list[int],
        actuators: np.ndarray,
        arm_dofs: np.ndarray,
    ) -> None:
        self.model = model
        self.config = config
        self.object_bodies = object_bodies
        self.colored_geoms = colored_geoms
        self.actuators = actuators
        self.arm_dofs = arm_dofs
        self.nominal = {
            "geom_friction": model.geom_friction.copy(),
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "dof_damping": model.dof_damping.copy(),
            "actuator_gainprm": model.actuator_gainprm.copy(),
            "actuator_biasprm": model.actuator_biasprm.copy(),
            "cam_pos": model.cam_pos.copy(),
            "cam_fovy": model.cam_fovy.copy(),
            "light_diffuse": model.light_diffuse.copy(),
            "geom_rgba": model.geom_rgba.copy(),
        }

    def restore(self) -> None:
        for name, value in self.nominal.items():
            getattr(self.model, name)[:] = value

    def apply(self, rng: np.random.Generator) -> EpisodeDraw:
        """Write one draw into the model (or the nominal model when disabled)."""
        self.restore()
        cfg, model = self.config, self.model
        if not cfg.enabled:
            return EpisodeDraw(action_latency=0, obs_noise_std=0.0)
        model.geom_friction[:, 0] *= _scale(rng, cfg.friction_scale)
        for body in self.object_bodies:
            mass_scale = _scale(rng, cfg.mass_scale)
            model.body_mass[body] *= mass_scale
            model.body_inertia[body] *= mass_scale
        model.dof_damping[self.arm_dofs] *= _scale(rng, cfg.damping_scale)
        gain = _scale(rng, cfg.actuator_gain_scale)
        # A position actuator's stiffness appears as gain and (negated) in the bias.
        model.actuator_gainprm[self.actuators, 0] *= gain
        model.actuator_biasprm[self.actuators, 1] *= gain
        model.cam_pos[:] += rng.normal(0.0, cfg.camera_pos_jitter, size=model.cam_pos.shape)
        model.cam_fovy[:] += rng.uniform(-cfg.camera_fovy_jitter_deg, cfg.camera_fovy_jitter_deg, size=model.ncam)
        model.light_diffuse[:] = np.clip(model.light_diffuse * _scale(rng, cfg.light_scale), 0.0, 1.0)
        for geom in self.colored_geoms:
            jitter = rng.uniform(-cfg.color_jitter, cfg.color_jitter, size=3)
            model.geom_rgba[geom, :3] = np.clip(model.geom_rgba[geom, :3] + jitter, 0.0, 1.0)
        low, high = cfg.action_latency_steps
        return EpisodeDraw(
            action_latency=int(rng.integers(low, high + 1)), obs_noise_std=cfg.obs_noise_std,
            object_pos_noise_std=cfg.object_pos_noise_std, object_dropout=cfg.object_dropout,
        )
