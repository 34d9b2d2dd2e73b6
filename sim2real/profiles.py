"""Domain-randomisation profiles: named sets of ranges, and the scaling that widens or narrows them.

    none   randomisation off (the nominal twin)
    light  small ranges around nominal (LIGHT below)
    heavy  LIGHT widened HEAVY_WIDENING times about nominal
    rig    the rig's own `randomization:` section (custom ranges), switched on

Every profile keeps the rig's object placement ranges (`object_xy`, `object_yaw`): those define
the task's start distribution, not the gap between twin and robot, so success stays comparable
across profiles. `scale_ranges` moves every range about its nominal value (scale factors about
1, jitters and noise about 0): 0 gives the nominal twin, 1 the profile, above 1 a wider one. The
curriculum uses it between 0 and 1.
"""

from __future__ import annotations

from tether.config import RandomizationConfig, Range, RigConfig

PROFILES = ("none", "light", "heavy", "rig")
HEAVY_WIDENING = 2.5
"""How many times wider than `light` each range of `heavy` is, about nominal."""

LIGHT = RandomizationConfig(
    enabled=True,
    friction_scale=Range(low=0.85, high=1.15),
    mass_scale=Range(low=0.9, high=1.1),
    damping_scale=Range(low=0.9, high=1.1),
    actuator_gain_scale=Range(low=0.95, high=1.05),
    camera_pos_jitter=0.005,
    camera_fovy_jitter_deg=1.0,
    light_scale=Range(low=0.8, high=1.2),
    color_jitter=0.06,
    action_latency_steps=(0, 1),
    obs_noise_std=0.001,
    object_pos_noise_std=0.004,  # a 4 cm marker seen at 30 px from 0.6 m: ~4 mm along the line of sight
    object_dropout=0.1,
)

_SCALE_RANGES = ("friction_scale", "mass_scale", "damping_scale", "actuator_gain_scale", "light_scale")
_JITTERS = ("camera_pos_jitter", "camera_fovy_jitter_deg", "color_jitter", "obs_noise_std", "object_pos_noise_std",
            "object_dropout")


def _scale_about_one(value: Range, scale: float) -> Range:
    low, high = 1.0 + scale * (value.low - 1.0), 1.0 + scale * (value.high - 1.0)
    return Range(low=max(low, 0.0), high=max(high, 0.0))


def scale_ranges(ranges: RandomizationConfig, scale: float) -> RandomizationConfig:
    """`ranges` moved `scale` of the way from nominal (0: none) to themselves (1), or beyond (>1).

    Results are clipped to what the config allows (scales stay non-negative, jitters within their
    bounds), so a wide scale saturates instead of failing. Object placement ranges are kept.
    """
    if scale < 0:
        raise ValueError(f"randomisation scale {scale}: must be >= 0")
    fields = RandomizationConfig.model_fields
    update: dict = {name: _scale_about_one(getattr(ranges, name), scale) for name in _SCALE_RANGES}
    for name in _JITTERS:
        bound = next(m.le for m in fields[name].metadata if hasattr(m, "le"))
        update[name] = min(getattr(ranges, name) * scale, bound)
    update["action_latency_steps"] = tuple(min(round(steps * scale), 10) for steps in ranges.action_latency_steps)
    return RandomizationConfig.model_validate({**ranges.model_dump(), **update})


def profile_ranges(profile: str, rig: RigConfig) -> RandomizationConfig:
    """The ranges of a named profile for a rig (its object placement ranges kept)."""
    placement = {"object_xy": rig.randomization.object_xy, "object_yaw": rig.randomization.object_yaw}
    if profile == "none":
        return rig.randomization.model_copy(update={"enabled": False})
    if profile == "rig":
        return rig.randomization.model_copy(update={"enabled": True})
    if profile == "light":
        return LIGHT.model_copy(update=placement)
    if profile == "heavy":
        return scale_ranges(LIGHT, HEAVY_WIDENING).model_copy(update=placement)
    raise ValueError(f"randomisation profile '{profile}': unknown (known: {', '.join(PROFILES)})")
