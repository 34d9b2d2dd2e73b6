"""The learner supervisor with real processes that die at once: restarts after a doubling back-off (on an
injected clock, so no test waits on wall time), then gives up with one line naming the log."""

import subprocess
import sys

from tether.cli.learner_supervisor import PID_FILE, LearnerSupervisor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _dying(code: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])


def _wait_dead(supervisor: LearnerSupervisor) -> None:
    supervisor.process.wait(timeout=30)


def test_a_dying_learner_is_restarted_with_a_doubling_back_off_then_given_up(tmp_path):
    clock, started = Clock(), []
    supervisor = LearnerSupervisor(lambda: started.append(1) or _dying(3), tmp_path, max_restarts=2, clock=clock)
    assert (tmp_path / PID_FILE).read_text().strip() == str(supervisor.process.pid)
    for restart, back_off in enumerate((1.0, 2.0)):
        _wait_dead(supervisor)
        assert supervisor.check() == 3 and supervisor.process is None and not (tmp_path / PID_FILE).exists()
        clock.now += back_off - 0.01
        assert supervisor.check() is None and len(started) == restart + 1  # still backing off
        clock.now += 0.01
        assert supervisor.check() is None and len(started) == restart + 2 and supervisor.restarts == restart + 1
    _wait_dead(supervisor)
    assert supervisor.check() == 3 and supervisor.gave_up
    clock.now += 100.0
    assert supervisor.check() is None and len(started) == 3  # given up: never started again
    assert supervisor.error == f"learner exited with 3 after 2 restarts, given up; see {tmp_path / 'learner.log'}"


def test_a_learner_that_never_came_up_is_not_restarted(tmp_path):
    supervisor = LearnerSupervisor(lambda: _dying(2), tmp_path, max_restarts=5, clock=Clock())
    _wait_dead(supervisor)
    assert supervisor.check(may_restart=False) == 2
    assert supervisor.gave_up and "before it sent weights" in supervisor.error and supervisor.restarts == 0


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _kill(process: subprocess.Popen) -> int:
    process.kill()
    return process.wait()


def test_stop_ends_a_running_learner(tmp_path):
    supervisor = LearnerSupervisor(_sleeper, tmp_path, max_restarts=3, clock=Clock())
    process = supervisor.process
    supervisor.stop(_kill)
    assert process.poll() is not None and supervisor.process is None and not (tmp_path / PID_FILE).exists()


def test_stop_cancels_a_pending_restart(tmp_path):
    clock, started = Clock(), []
    supervisor = LearnerSupervisor(lambda: started.append(1) or _sleeper(), tmp_path, max_restarts=3, clock=clock)
    _kill(supervisor.process)  # SIGKILL, as the OOM killer would
    assert supervisor.check() == -9
    supervisor.stop(_kill)
    clock.now += 100.0
    assert supervisor.check() is None and supervisor.process is None and len(started) == 1
