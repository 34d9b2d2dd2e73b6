"""The randomisation curriculum widens step by step when training success passes the threshold, and
only then; its ranges follow its scale and its state records every widening."""

import pytest

from tether.config import load_rig
from tether.sim2real.curriculum import Curriculum, CurriculumConfig
from tether.sim2real.profiles import profile_ranges, scale_ranges

FULL = profile_ranges("heavy", load_rig("twin_panda"))


def run(curriculum: Curriculum, outcomes: list[bool], start_step: int = 0) -> list[bool]:
    return [curriculum.record(success, start_step + i) for i, success in enumerate(outcomes)]


def test_widens_as_success_rises_up_to_the_full_ranges():
    curriculum = Curriculum(FULL, CurriculumConfig(step=0.5, threshold=0.6, window=5))
    assert curriculum.scale == 0.0 and curriculum.ranges == scale_ranges(FULL, 0.0)
    widened = run(curriculum, [False, True, True, False, True])  # 3/5 = 0.6 at the fifth episode
    assert widened == [False] * 4 + [True]
    assert curriculum.scale == 0.5 and curriculum.ranges == scale_ranges(FULL, 0.5)
    # The window starts over: four successes are not yet five episodes at the new level.
    assert run(curriculum, [True] * 4, 5) == [False] * 4
    assert run(curriculum, [True], 9) == [True] and curriculum.scale == 1.0 and curriculum.ranges == FULL
    assert run(curriculum, [True] * 10, 10) == [False] * 10 and curriculum.scale == 1.0
    state = curriculum.state()
    assert [(h["env_steps"], h["scale"]) for h in state["history"]] == [(0, 0.0), (4, 0.5), (9, 1.0)]
    assert state["history"][1]["success_rate"] == pytest.approx(0.6)


def test_does_not_widen_while_success_stays_low():
    curriculum = Curriculum(FULL, CurriculumConfig(step=0.25, threshold=0.6, window=5))
    outcomes = [True, False, False, True, False] * 20  # a steady 40 %
    assert not any(run(curriculum, outcomes))
    assert curriculum.scale == 0.0 and curriculum.success_rate == pytest.approx(0.4)
    assert len(curriculum.state()["history"]) == 1


def test_without_curriculum_the_full_ranges_hold_from_the_start():
    curriculum = Curriculum(FULL, CurriculumConfig(start=1.0))
    assert curriculum.ranges == FULL and not any(run(curriculum, [True] * 50))
