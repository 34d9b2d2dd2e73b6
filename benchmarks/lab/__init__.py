"""The franky-sim lab."""
