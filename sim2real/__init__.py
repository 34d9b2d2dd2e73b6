"""Sim-to-real: the MuJoCo twin, the scripted operator, domain randomisation and system identification."""
