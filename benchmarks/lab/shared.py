"""The world state the server process shares with the lab process, in `multiprocessing.shared_memory`.

The server writes (every few physics steps) the simulation's qpos and time under a sequence lock:
the counter is odd while a write is under way, so a reader copies and retries until it saw one even
value on both sides of its copy. The lab writes cube placements (an episode reset, where on a real
rig a person puts the cube back) into a request slot the server applies between two physics steps.
One writer per field, so no lock is shared across processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

MAX_QPOS = 64
_INTS, _FLOATS = 8, 8 + MAX_QPOS
# int64 slots
_SEQ, _REQUEST, _APPLIED, _NQ = range(4)
# float64 slots
_SIM_TIME, _WALL_TIME, _REQ_X, _REQ_Y, _REQ_YAW = range(5)
_QPOS = 8


@dataclass(frozen=True)
class Snapshot:
    """The world at one published physics step."""

    qpos: np.ndarray
    sim_time: float
    """Seconds of simulated time (1 ms per physics step)."""
    wall_time: float
    """time.time() when it was published."""


class WorldState:
    """A view of the shared block; `create` in the lab (which owns and unlinks it), `attach` in the server."""

    def __init__(self, memory: shared_memory.SharedMemory, owner: bool) -> None:
        self.memory, self.owner = memory, owner
        self._ints = np.ndarray((_INTS,), np.int64, memory.buf, 0)
        self._floats = np.ndarray((_FLOATS,), np.float64, memory.buf, _INTS * 8)

    @classmethod
    def create(cls) -> WorldState:
        memory = shared_memory.SharedMemory(create=True, size=(_INTS + _FLOATS) * 8)
        memory.buf[:] = bytes(memory.size)
        return cls(memory, owner=True)

    @classmethod
    def attach(cls, name: str) -> WorldState:
        memory = shared_memory.SharedMemory(name=name)
        # Python 3.11 registers an attached block with this process's resource tracker, which would
        # unlink it when this process exits; the lab owns it.
        resource_tracker.unregister(memory._name, "shared_memory")  # noqa: SLF001
        return cls(memory, owner=False)

    @property
    def name(self) -> str:
        return self.memory.name

    def close(self) -> None:
        del self._ints, self._floats  # numpy views pin the buffer; drop them before closing it
        self.memory.close()
        if self.owner:
            self.memory.unlink()

    # server side
    def publish(self, qpos: np.ndarray, sim_time: float) -> None:
        ints, floats = self._ints, self._floats
        ints[_SEQ] += 1
        ints[_NQ] = len(qpos)
        floats[_QPOS : _QPOS + len(qpos)] = qpos
        floats[_SIM_TIME], floats[_WALL_TIME] = sim_time, time.time()
        ints[_SEQ] += 1

    def pending_request(self) -> tuple[int, float, float, float] | None:
        """(number, x, y, yaw) of a placement the lab asked for and the server has not applied yet."""
        request = int(self._ints[_REQUEST])
        if request == self._ints[_APPLIED]:
            return None
        x, y, yaw = (float(v) for v in self._floats[_REQ_X : _REQ_YAW + 1])
        return request, x, y, yaw

    def mark_applied(self, request: int) -> None:
        """Call after publishing the state with the placement in it: the lab's next read then shows it."""
        self._ints[_APPLIED] = request

    # lab side
    def read(self, timeout_s: float = 1.0) -> Snapshot:
        deadline = time.monotonic() + timeout_s
        while True:
            before = int(self._ints[_SEQ])
            if before % 2 == 0 and before > 0:
                nq = int(self._ints[_NQ])
                qpos = self._floats[_QPOS : _QPOS + nq].copy()
                sim_time, wall_time = float(self._floats[_SIM_TIME]), float(self._floats[_WALL_TIME])
                if int(self._ints[_SEQ]) == before:
                    return Snapshot(qpos, sim_time, wall_time)
            if time.monotonic() > deadline:
                raise TimeoutError("the lab server published no world state")
            time.sleep(0.0002)

    def request_place(self, x: float, y: float, yaw: float, timeout_s: float = 5.0) -> None:
        """Ask the server to put the cube at (x, y) on the table with this yaw; returns once a read shows it there."""
        self._floats[_REQ_X : _REQ_YAW + 1] = (x, y, yaw)
        request = int(self._ints[_REQUEST]) + 1
        self._ints[_REQUEST] = request  # written last: the server reads the pose only after seeing it
        deadline = time.monotonic() + timeout_s
        while self._ints[_APPLIED] != request:
            if time.monotonic() > deadline:
                raise TimeoutError("the lab server did not place the cube (is it running?)")
            time.sleep(0.001)
