"""The frame names every stamped message and bag uses (REP-103 / REP-105), so a ROS 2 user can rely on them.

Poses, twists and commands are in `base_link`; the wrench in the tool frame `tcp`; images and camera infos in
`<camera>_optical_frame` (z forward, x right, y down). tether publishes no tf (tf2_msgs is not on PyPI): a
rig's camera extrinsics are in its YAML (`cameras[].pose`), and a ROS graph that needs `/tf` publishes them
with its own static transform publisher under these names.
"""

BASE_FRAME = "base_link"
TOOL_FRAME = "tcp"


def optical_frame(camera: str) -> str:
    """The frame of a camera's images and intrinsics."""
    return f"{camera}_optical_frame"
