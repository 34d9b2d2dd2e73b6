"""Headless camera rendering for the twin (EGL, chosen in tether/__init__.py), tuned for Mesa's CPU rasteriser.

Shadows, reflections and the skybox dominate render time under software GL and add
little a policy needs, so they are off. One renderer serves every camera of a size.
"""

from __future__ import annotations

import mujoco
import numpy as np

from tether.config import CameraConfig
from tether.imaging import crop_resize

_OFF_FLAGS = (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX)


class CameraRenderer:
    """Renders the rig's twin cameras, then applies the rig's crop and resize like a real camera node."""

    def __init__(self, model: mujoco.MjModel, cameras: list[CameraConfig]) -> None:
        self.cameras = cameras
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        for camera in cameras:
            width, height = camera.resolution
            if (width, height) not in self._renderers:
                renderer = mujoco.Renderer(model, height=height, width=width)
                for flag in _OFF_FLAGS:
                    renderer.scene.flags[flag] = 0
                self._renderers[(width, height)] = renderer

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        images = {}
        for camera in self.cameras:
            renderer = self._renderers[tuple(camera.resolution)]
            renderer.update_scene(data, camera=camera.name)
            images[camera.name] = crop_resize(renderer.render(), camera.crop, camera.output_size)
        return images

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
