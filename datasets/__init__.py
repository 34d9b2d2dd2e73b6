"""Episode store (zarr), replay buffers, samplers and converters.

- `store`: the zarr v3 episode store (`EpisodeWriter`, `EpisodeStore`); `verify`: verify / repair
- `replay`: ring `ReplayBuffer` and `MixedSampler`; `replay_io`: store <-> buffer, buffer checkpoints
- `sampler`: RL transitions and diffusion windows from a store
- `mcap_io`: ROS 2 bags (MCAP) to and from a store; `view`: contact sheets and rerun recordings
- `diffusion_policy_io`: a store in the Diffusion Policy codebase's ReplayBuffer layout
- `episode`: `EpisodeArrays`, the unit they all exchange; `codecs`: compression choices
"""
