"""Rig YAML files, one per set-up; load them with tether.config.load_rig."""
