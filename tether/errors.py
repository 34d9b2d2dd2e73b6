"""The two ways a tether command fails for its user, which the command line tells apart by exit code.

- `BadInput` (exit 2): something the user gave cannot be used: a rig file, a checkpoint, a store, an
  argument. Fixing the input fixes the command.
- a runtime failure (exit 1): `tether.types.DeviceError` (a device missing or unreachable), a timeout, an
  OS error such as a full disk. The input was fine; fixing the machine fixes the command.

Each carries a one-line message that names the thing and the reason; the CLI prints it as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tether.types import DeviceError


class BadInput(ValueError):
    """A file, folder or argument the user gave that cannot be used; the message names it and why."""




class MissingExtra(DeviceError):
    """A hardware driver's library is not installed (exit 1, like a missing device); names the extra to install."""


@contextmanager
def needs_extra(what: str, extra: str) -> Iterator[None]:
    """Import a driver inside this block: a library missing from the environment becomes one line that names
    the extra installing it (`pip install 'tether[realsense]'`); a missing tether module stays a bug."""
    try:
        yield
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] == "tether":
            raise
        raise MissingExtra(f"{what} needs the '{error.name}' package, which is not installed: "
                           f"pip install 'tether[{extra}]'") from None
