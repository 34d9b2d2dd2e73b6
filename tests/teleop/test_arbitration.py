"""Who acts: the takeover rule of the scripted operator and the sticky human override."""

import numpy as np
import pytest

from tether.teleop.arbitration import StickyOverride, TakeoverRule

WANTED = np.array([1.0, 0.0, 0.0, -1.0])


def test_takeover_after_patience_then_hold_then_hand_back():
    rule = TakeoverRule(threshold=0.5, patience=3, hold_steps=2)
    close = np.array([0.9, 0.1, 0.0, -1.0])
    far = np.array([-1.0, 0.0, 0.0, -1.0])
    assert [rule.step(close, WANTED) for _ in range(4)] == [False] * 4
    assert [rule.step(far, WANTED) for _ in range(6)] == [False, False, True, True, False, False]


def test_opposite_gripper_counts_as_straying_and_no_policy_means_operator():
    rule = TakeoverRule(threshold=0.5, patience=1, hold_steps=1)
    assert rule.step(np.array([1.0, 0.0, 0.0, 0.9]), WANTED)
    assert TakeoverRule().step(None, WANTED)


def test_a_hovering_or_crawling_policy_strays_where_the_operator_would_move():
    rule = TakeoverRule(threshold=1.0, patience=1, hold_steps=1)
    hovering, crawling = np.array([0.0, 0.0, 0.0, -1.0]), np.array([0.2, 0.0, 0.0, -1.0])
    # Both are within the motion threshold of the operator's move (1.0 and 0.8 away): progress decides.
    assert rule.strays(hovering, WANTED) and rule.strays(crawling, WANTED)
    assert not rule.strays(np.array([0.3, 0.0, 0.0, -1.0]), WANTED)
    # Where the operator itself barely moves (fine alignment), standing still is no stray.
    assert not rule.strays(hovering, np.array([0.03, 0.0, 0.0, -1.0]))


def test_rule_validates_its_settings():
    with pytest.raises(ValueError, match="TakeoverRule"):
        TakeoverRule(threshold=0)


def test_sticky_override():
    sticky = StickyOverride(sticky_s=0.5)
    assert not sticky.human_acts(False, 0.0)
    assert sticky.human_acts(True, 1.0)
    assert sticky.human_acts(False, 1.4)
    assert not sticky.human_acts(False, 1.6)
    sticky.reset()
    assert not sticky.human_acts(False, 1.41)
