"""Fixed-capacity in-memory replay buffers for off-policy RL, and a mixer over several of them.

    buffer = ReplayBuffer(observation_space, action_dim=4, capacity=200_000)
    buffer.add(transition)                       # tether.types.Transition
    batch = buffer.sample(256, rng)              # tether.types.Batch, arrays (256, ...)
    mixer = MixedSampler([online, demos])        # 50/50 by default
    batch = mixer.sample(256, rng)

Layout: one preallocated ring of slots; a slot holds one observation and, when it starts a
transition, that step's action, reward and flags. A transition in slot i takes its next
observation from slot i + 1, so an image is stored once. When an episode ends (terminated or
truncated, or the next `add` does not continue from the previous next observation) the true
final observation takes one extra slot that is never sampled as a transition start.

    slot:   0    1    2    3    4    5    6
    obs:   a0   a1   a2  aT   b0   b1   b1'  <- write head (next obs of the running episode)
    valid:  1    1    1    0    1    1    0

Only valid slots are sampled; a valid slot's successor is always written in the same lap and
in the same episode, so a sample never pairs across episodes or across the write head.

With a frozen image encoder, `cache_features` keeps each frame's features in a slot-aligned
array, computed once when the frame is written; samples then carry those features in place of
the frames, while `episodes()` (what a checkpoint saves) still holds the images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import gymnasium as gym
import numpy as np

from tether.datasets.episode import EpisodeArrays
from tether.types import Batch, Observation, Transition


def _obs_boxes(observation_space: gym.spaces.Dict) -> dict[str, gym.spaces.Box]:
    if not isinstance(observation_space, gym.spaces.Dict):
        raise TypeError(f"observation_space: expected gymnasium.spaces.Dict, got {type(observation_space).__name__}")
    boxes = {}
    for key, space in observation_space.spaces.items():
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"observation '{key}': expected a Box space, got {type(space).__name__}")
        boxes[key] = space
    if not boxes:
        raise ValueError("observation_space: has no keys")
    return boxes


class ReplayBuffer:
    """A ring of `capacity` slots over a Dict observation space; the oldest data is overwritten."""

    def __init__(self, observation_space: gym.spaces.Dict, action_dim: int, capacity: int) -> None:
        if action_dim < 1:
            raise ValueError(f"action_dim: must be at least 1, got {action_dim}")
        if capacity < 2:
            raise ValueError(f"capacity: must be at least 2 (one transition and its next observation), got {capacity}")
        self.observation_space = observation_space
        self.action_dim = action_dim
        self.capacity = capacity
        boxes = _obs_boxes(observation_space)
        self._obs = {key: np.zeros((capacity, *box.shape), box.dtype) for key, box in boxes.items()}
        self._action = np.zeros((capacity, action_dim), np.float32)
        self._policy_action = np.full((capacity, action_dim), np.nan, np.float32)
        self._reward = np.zeros(capacity, np.float32)
        self._terminated = np.zeros(capacity, bool)
        self._truncated = np.zeros(capacity, bool)
        self._intervened = np.zeros(capacity, bool)
        self._valid = np.zeros(capacity, bool)  # slot starts a transition whose next obs is slot + 1
        self._cursor = 0  # slot of the next transition's observation
        self._open = False  # slot `_cursor` already holds the running episode's next observation
        self._filled = 0  # slots [0, _filled) have been written
        self._size = 0  # number of valid slots
        self._encode: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
        self._encoded_keys: tuple[str, ...] = ()  # frames that samples replace by their cached features
        self._features: dict[str, np.ndarray] = {}  # feature name -> (capacity, D)

    def __len__(self) -> int:
        """Number of transitions that can be sampled."""
        return self._size

    @property
    def layout_signature(self) -> tuple:
        """Keys, shapes and dtypes of what a sample holds (bounds of the spaces aside)."""
        return tuple((key, value.shape[1:], value.dtype.str) for key, value in self._obs.items()), self.action_dim

    @property
    def nbytes(self) -> int:
        """Memory held by the preallocated arrays."""
        arrays = [*self._obs.values(), *self._features.values(), self._action, self._policy_action, self._reward, self._terminated,
                  self._truncated, self._intervened, self._valid]
        return sum(a.nbytes for a in arrays)

    def check(self, transition: Transition) -> None:
        """Raise ValueError (naming the key and the reason) if `transition` does not fit this buffer."""
        for name, obs in (("obs", transition.obs), ("next_obs", transition.next_obs)):
            if obs.keys() != self._obs.keys():
                raise ValueError(f"transition {name}: keys {sorted(obs)} differ from the buffer's {sorted(self._obs)}")
            for key, value in obs.items():
                if np.shape(value) != self._obs[key].shape[1:]:
                    raise ValueError(
                        f"transition {name}['{key}']: shape {np.shape(value)}, expected {self._obs[key].shape[1:]}"
                    )
        if np.shape(transition.action) != (self.action_dim,):
            raise ValueError(f"transition action: shape {np.shape(transition.action)}, expected ({self.action_dim},)")

    def add(self, transition: Transition) -> None:
        """Append one step. Consecutive steps of an episode share their observation slot."""
        self.check(transition)
        if self._open and not self._continues(transition.obs):
            self._cursor = (self._cursor + 1) % self.capacity  # keep the last next obs as a final obs
            self._open = False
        slot = self._cursor
        if not self._open:
            self._write_obs(slot, transition.obs)
        self._action[slot] = transition.action
        self._policy_action[slot] = np.nan if transition.policy_action is None else transition.policy_action
        self._reward[slot] = transition.reward
        self._terminated[slot] = transition.terminated
        self._truncated[slot] = transition.truncated
        self._intervened[slot] = transition.intervened
        self._set_valid(slot, True)
        successor = (slot + 1) % self.capacity
        self._write_obs(successor, transition.next_obs)
        self._set_valid(successor, False)
        self._filled = max(self._filled, slot + 1, successor + 1)
        self._open = not (transition.terminated or transition.truncated)
        self._cursor = successor if self._open else (successor + 1) % self.capacity

    def cache_features(self, encode: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                       keys: Sequence[str], chunk: int = 256) -> None:
        """From now on keep `encode`'s features of the `keys` frames beside every slot: the stored frames are
        encoded now, in chunks, and each new frame once as it is written. `encode` maps {key: (N, ...)} to
        {feature name: (N, D)}; samples then hold the feature names in place of `keys`."""
        missing = sorted(set(keys) - set(self._obs))
        if missing:
            raise ValueError(f"cache_features: keys {missing} are not in the buffer (it holds {sorted(self._obs)})")
        self._encode, self._encoded_keys, self._features = encode, tuple(keys), {}
        for start in range(0, self._filled, chunk):
            slots = np.arange(start, min(start + chunk, self._filled))
            self._store_features(slots, {key: self._obs[key][slots] for key in keys})

    def zero_rewards(self) -> None:
        """Forget the task's reward of every stored transition (a learner trained on interventions alone)."""
        self._reward[:] = 0.0

    def add_episode(self, episode: EpisodeArrays) -> None:
        """Append every step of an episode (the same as `add` per step)."""
        for transition in episode.transitions():
            self.add(transition)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement."""
        if batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
        if self._size == 0:
            raise ValueError("replay buffer is empty: add transitions before sampling")
        slots = np.empty(0, np.int64)
        while slots.size < batch_size:  # rejection over written slots: O(batch), few final-obs slots
            draw = rng.integers(0, self._filled, size=2 * (batch_size - slots.size))
            slots = np.concatenate([slots, draw[self._valid[draw]]])
        return self._batch(slots[:batch_size])

    def episodes(self) -> Iterator[EpisodeArrays]:
        """The stored episodes, oldest first (the oldest may have lost its start to the ring)."""
        for first, length in self._runs():
            slots = (first + np.arange(length)) % self.capacity
            final = (first + length) % self.capacity
            yield EpisodeArrays(
                obs={key: value[slots] for key, value in self._obs.items()},
                final_obs={key: value[final].copy() for key, value in self._obs.items()},
                action=self._action[slots],
                policy_action=self._policy_action[slots],
                reward=self._reward[slots],
                terminated=self._terminated[slots],
                truncated=self._truncated[slots],
                intervened=self._intervened[slots],
            )

    @property
    def layout(self) -> tuple[int, int]:
        """(slot of the oldest transition, number of written slots): what a restore needs to
        place the same episodes in the same slots, so sampling with the same seed repeats."""
        runs = self._runs()
        return (runs[0][0] if runs else 0), self._filled

    def restore_layout(self, first_slot: int, filled: int) -> None:
        """Start an empty buffer at `first_slot`, treating `filled` slots as written (see `layout`)."""
        if self._filled:
            raise ValueError("restore_layout: the buffer is not empty")
        if not (0 <= first_slot < self.capacity and 0 <= filled <= self.capacity):
            raise ValueError(f"restore_layout: slot {first_slot} / filled {filled} outside capacity {self.capacity}")
        self._cursor = first_slot
        self._filled = filled

    # --- internals -------------------------------------------------------------------------

    def _continues(self, obs: Observation) -> bool:
        return all(np.array_equal(self._obs[key][self._cursor], value) for key, value in obs.items())

    def _write_obs(self, slot: int, obs: Observation) -> None:
        for key, value in obs.items():
            self._obs[key][slot] = value
        if self._encode is not None:
            self._store_features(np.array([slot]), {key: self._obs[key][slot : slot + 1] for key in self._encoded_keys})

    def _store_features(self, slots: np.ndarray, frames: dict[str, np.ndarray]) -> None:
        for name, features in self._encode(frames).items():
            if name not in self._features:
                self._features[name] = np.zeros((self.capacity, *features.shape[1:]), np.float32)
            self._features[name][slots] = features

    def _set_valid(self, slot: int, valid: bool) -> None:
        self._size += int(valid) - int(self._valid[slot])
        self._valid[slot] = valid

    def _runs(self) -> list[tuple[int, int]]:
        """(first slot, length) of each stored run of transitions, oldest first."""
        if not self._filled:
            return []
        newest = self._cursor if self._open else (self._cursor - 1) % self.capacity
        start = (newest + 1) % self.capacity if self._filled == self.capacity else 0
        order = (start + np.arange(self._filled)) % self.capacity
        valid = self._valid[order].astype(np.int8)
        edges = np.diff(np.concatenate([[0], valid, [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(int(order[a]), int(b - a)) for a, b in zip(starts, stops)]

    def _batch(self, slots: np.ndarray) -> Batch:
        successors = (slots + 1) % self.capacity
        arrays = {key: value for key, value in self._obs.items() if key not in self._encoded_keys}
        arrays.update(self._features)
        return Batch(
            obs={key: value[slots] for key, value in arrays.items()},
            action=self._action[slots],
            reward=self._reward[slots],
            next_obs={key: value[successors] for key, value in arrays.items()},
            terminated=self._terminated[slots],
            intervened=self._intervened[slots],
        )


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """One batch holding the given batches one after another."""
    first = batches[0]
    return Batch(
        obs={key: np.concatenate([b.obs[key] for b in batches]) for key in first.obs},
        action=np.concatenate([b.action for b in batches]),
        reward=np.concatenate([b.reward for b in batches]),
        next_obs={key: np.concatenate([b.next_obs[key] for b in batches]) for key in first.next_obs},
        terminated=np.concatenate([b.terminated for b in batches]),
        intervened=np.concatenate([b.intervened for b in batches]),
    )


class MixedSampler:
    """Samples fixed fractions of each batch from several buffers (RLPD: 50% online, 50% demos)."""

    def __init__(self, buffers: Sequence[ReplayBuffer], fractions: Sequence[float] | None = None) -> None:
        if not buffers:
            raise ValueError("MixedSampler: needs at least one buffer")
        fractions = [1.0 / len(buffers)] * len(buffers) if fractions is None else list(fractions)
        if len(fractions) != len(buffers):
            raise ValueError(f"fractions: {len(fractions)} given for {len(buffers)} buffers")
        if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
            raise ValueError(f"fractions: must be non-negative and sum to 1, got {fractions}")
        reference = buffers[0]
        for i, buffer in enumerate(buffers[1:], start=1):
            if buffer.layout_signature != reference.layout_signature:
                raise ValueError(f"buffer {i}: observation keys, shapes, dtypes or action_dim differ from buffer 0")
        self.buffers = list(buffers)
        self.fractions = fractions

    def counts(self, batch_size: int) -> list[int]:
        """How many samples each buffer gives: the fractions rounded by largest remainder."""
        exact = np.asarray(self.fractions) * batch_size
        counts = np.floor(exact).astype(int)
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[: batch_size - counts.sum()]] += 1
        return counts.tolist()

    def sample(self, batch_size: int, rng: np.random.Generator, *, minibatches: int = 1) -> Batch:
        """A batch of `minibatches` equal slices, each holding the fractions (buffer 0's rows first).

        A learner that splits one sampled batch into `utd_ratio` updates passes `minibatches=utd_ratio`,
        so every update sees the mix (RLPD's symmetric sampling), not some updates all-online and
        others all-demo.
        """
        if minibatches < 1 or batch_size % minibatches:
            raise ValueError(f"batch of {batch_size} does not split into {minibatches} equal minibatches")
        counts = self.counts(batch_size // minibatches)
        for i, (buffer, count) in enumerate(zip(self.buffers, counts)):
            if count and len(buffer) == 0:
                raise ValueError(f"buffer {i} is empty but its fraction {self.fractions[i]} asks for {count} samples")
        return concat_batches([
            buffer.sample(count, rng)
            for _ in range(minibatches)
            for buffer, count in zip(self.buffers, counts)
            if count
        ])
