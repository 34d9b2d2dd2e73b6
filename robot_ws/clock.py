"""Device clocks onto the wall / ROS clock, so every sample carries when it was taken, not received."""

from __future__ import annotations


class DeviceClock:
    """Converts a device's own clock (seconds) to the wall / ROS clock.

    A frame cannot arrive before it was taken, so `received - device` is the clock offset plus
    the transport delay; the smallest value seen is the best estimate of the offset. It may
    creep up by `drift` s/s so that the device's crystal drifting does not freeze an old
    minimum, and it is re-learnt when the device clock jumps backwards (device reset).
    """

    def __init__(self, drift: float = 1e-4) -> None:
        self.drift = drift
        self._offset: float | None = None
        self._last: tuple[float, float] | None = None  # (device, received) of the previous sample

    def to_wall(self, device_s: float, received_s: float) -> float:
        sample = received_s - device_s
        if self._offset is None or self._last is None or device_s < self._last[0]:
            self._offset = sample
        else:
            self._offset = min(self._offset + self.drift * (received_s - self._last[1]), sample)
        self._last = (device_s, received_s)
        return device_s + self._offset
