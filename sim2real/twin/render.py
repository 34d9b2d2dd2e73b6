"""Headless camera rendering for the twin (EGL, chosen in tether/__init__.py), tuned for Mesa's CPU rasteriser.

Shadows, reflections and the skybox dominate render time under software GL and add
little a policy needs, so they are off. One renderer serves every camera of a size.
"""

from __future__ import annotations

import mujoco
import numpy as np

from tether.config import CameraConfig
from tether.imaging import crop_resize

OVERVIEW_SIZE = (128, 128)
OVERVIEW_LOOKAT = (0.4, 0.0, 0.25)
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

    def render(self, data: mujoco.MjData, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The named cameras' images (all of them by default), cropped and resized as the rig says."""
        images = {}
        for camera in self.cameras if names is None else [c for c in self.cameras if c.name in names]:
            renderer = self._renderers[tuple(camera.resolution)]
            renderer.update_scene(data, camera=camera.name)
            images[camera.name] = crop_resize(renderer.render(), camera.crop, camera.output_size)
        return images

    def overview(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """The workspace seen from a fixed viewpoint beside the table: a picture for rigs with no twin camera."""
        if OVERVIEW_SIZE not in self._renderers:
            self._renderers[OVERVIEW_SIZE] = mujoco.Renderer(model, height=OVERVIEW_SIZE[1], width=OVERVIEW_SIZE[0])
        camera = mujoco.MjvCamera()
        camera.lookat[:], camera.distance, camera.azimuth, camera.elevation = OVERVIEW_LOOKAT, 1.3, 200.0, -20.0
        renderer = self._renderers[OVERVIEW_SIZE]
        renderer.update_scene(data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
