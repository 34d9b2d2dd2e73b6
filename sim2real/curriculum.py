"""An automatic domain-randomisation curriculum: widen the ranges as the policy succeeds.

Training starts at `start` of the way from the nominal twin to the profile's full ranges
(`tether.sim2real.profiles.scale_ranges`). After every training episode the outcome enters a
rolling window; once the window holds `window` episodes played at the current level and their
success rate reaches `threshold`, the scale grows by `step` (up to 1) and the window starts
over, so each level must be earned on its own ranges. Every change is logged and kept in
`history`.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tether.config import RandomizationConfig
from tether.sim2real.profiles import scale_ranges

log = logging.getLogger(__name__)


class CurriculumConfig(BaseModel):
    """When and how far the randomisation ranges widen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: float = Field(0.0, ge=0, le=1)
    """Scale at the start: 0 is the nominal twin, 1 the profile's full ranges."""
    step: float = Field(0.25, gt=0, le=1)
    """Scale added at each widening."""
    threshold: float = Field(0.6, gt=0, le=1)
    """Rolling training success rate that earns the next widening."""
    window: int = Field(20, ge=1)
    """Training episodes, all at the current level, that the success rate is taken over."""


class Curriculum:
    """Tracks training success and the current randomisation scale."""

    def __init__(self, full: RandomizationConfig, config: CurriculumConfig | None = None) -> None:
        self.full = full
        self.config = config or CurriculumConfig()
        self.scale = self.config.start
        self._outcomes: deque[bool] = deque(maxlen=self.config.window)
        self.history: list[dict[str, float]] = [{"env_steps": 0, "scale": self.scale, "success_rate": 0.0}]

    @property
    def ranges(self) -> RandomizationConfig:
        """The ranges at the current scale."""
        return scale_ranges(self.full, self.scale)

    @property
    def success_rate(self) -> float:
        return sum(self._outcomes) / len(self._outcomes) if self._outcomes else 0.0

    def record(self, success: bool, env_steps: int) -> bool:
        """Add one finished training episode; returns True when this widened the ranges."""
        self._outcomes.append(bool(success))
        full_window = len(self._outcomes) == self.config.window
        if self.scale >= 1.0 or not full_window or self.success_rate < self.config.threshold:
            return False
        rate = self.success_rate
        self.scale = min(1.0, self.scale + self.config.step)
        self._outcomes.clear()
        self.history.append({"env_steps": env_steps, "scale": self.scale, "success_rate": rate})
        log.info("curriculum: success %.2f over %d episodes at step %d, randomisation scale now %.2f",
                 rate, self.config.window, env_steps, self.scale)
        return True

    def state(self) -> dict[str, Any]:
        """What to log: the scale, the rolling success at this level and every widening so far."""
        return {"scale": self.scale, "level_success_rate": self.success_rate,
                "level_episodes": len(self._outcomes), "history": list(self.history)}
