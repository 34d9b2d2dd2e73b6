"""The two ways a tether command fails for its user, which the command line tells apart by exit code.

- `BadInput` (exit 2): something the user gave cannot be used: a rig file, a checkpoint, a store, an
  argument. Fixing the input fixes the command.
- a runtime failure (exit 1): `tether.types.DeviceError` (a device missing or unreachable), a timeout, an
  OS error such as a full disk. The input was fine; fixing the machine fixes the command.

Each carries a one-line message that names the thing and the reason; the CLI prints it as it is.
"""

from __future__ import annotations


class BadInput(ValueError):
    """A file, folder or argument the user gave that cannot be used; the message names it and why."""

