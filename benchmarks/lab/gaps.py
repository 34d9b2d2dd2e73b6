"""The lab's reality gaps: each a named setting that makes franky-sim differ from what the rig file says.

A gap at its nominal value does nothing; `Gaps.named(["payload", "latency"])` switches the named ones
on at the magnitudes in `GAP_SETTINGS`, and any field can be set on its own for a sweep.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class Gaps(BaseModel):
    """How the lab differs from the rig's nominal model. Defaults are "no gap"."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    payload_kg: float = Field(0.0, ge=0.0, le=3.0)
    """Mass on the hand that neither the rig (payload_kg) nor franky-sim's controller model knows."""
    payload_offset_m: float = Field(0.04, ge=0.0, le=0.2)
    """Where that mass sits along the hand's z axis (towards the fingers)."""
    friction_scale: float = Field(1.0, ge=0.0, le=10.0)
    """Factor on every arm joint's Coulomb friction (MuJoCo frictionloss)."""
    extra_damping: float = Field(0.0, ge=0.0, le=20.0)
    """Viscous damping added to every arm joint (N m s/rad)."""
    latency_ms: int = Field(0, ge=0, le=50)
    """Delay of every torque the controller commands, a FIFO of this many 1 ms physics steps."""
    extrinsics_m: float = Field(0.0, ge=0.0, le=0.1)
    """Distance the rendered cameras sit from the rig's calibrated position."""
    extrinsics_deg: float = Field(0.0, ge=0.0, le=20.0)
    """Angle the rendered cameras are turned from the rig's calibrated orientation."""
    light_scale: float = Field(1.0, gt=0.0, le=3.0)
    """Factor on franky-sim's light intensities."""
    light_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-channel colour factor of the lights."""
    table_rgba: tuple[float, float, float, float] = (0.55, 0.42, 0.3, 1.0)
    """Table colour (the nominal is a wooden brown, not the twin's grey-beige)."""
    cube_rgba: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    """Tint of the cube's faces (white: the printed markers as they are)."""
    cube_mass_kg: float = Field(0.1, gt=0.0, le=2.0)
    """The cube's mass (the twin's is 0.1 kg)."""
    cube_friction: float = Field(1.0, gt=0.0, le=3.0)
    """The cube's sliding friction (the twin's is 1.0)."""

    @classmethod
    def named(cls, names: Iterable[str], **overrides: object) -> Gaps:
        """The gaps called `names` switched on (see GAP_SETTINGS), then `overrides` on top."""
        settings: dict[str, object] = {}
        for name in names:
            if name not in GAP_SETTINGS:
                raise ValueError(f"gap '{name}': unknown, choose from {', '.join(GAP_SETTINGS)}")
            settings.update(GAP_SETTINGS[name])
        return cls(**settings, **overrides)


GAP_SETTINGS: dict[str, dict[str, object]] = {
    "payload": {"payload_kg": 1.0},  # about 5 mm of sag under the rig's 2000 N/m impedance
    "friction": {"friction_scale": 2.0, "extra_damping": 2.0},
    "latency": {"latency_ms": 3},  # from 4 ms the 1 kHz loops (franky-sim's joint PD that homes) oscillate
    "extrinsics": {"extrinsics_m": 0.02, "extrinsics_deg": 2.0},
    "lighting": {"light_scale": 0.6, "light_tint": (1.0, 0.85, 0.7), "table_rgba": (0.3, 0.32, 0.36, 1.0),
                 "cube_rgba": (0.95, 0.85, 0.75, 1.0)},
    "cube": {"cube_mass_kg": 0.2, "cube_friction": 0.5},
}
"""Each named gap and the fields it sets."""
