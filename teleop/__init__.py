"""Teleop input devices and intervention arbitration."""
