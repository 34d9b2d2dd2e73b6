"""The one learner core: replay and demo buffers, their mixing, interventions, the update schedule,
metrics, checkpoint and exact resume. Drivers move transitions in and weights out.

    learner = Learner(agent, LoopConfig(...), seed=0, run_dir=run)
    learner.resume()                      # from run/checkpoint if there is one
    learner.add(transition)               # every environment step (from any driver)
    learner.update_if_due()               # one agent.update per step since learning began
    learner.policy_weights()              # (numpy state dict, config JSON, version) for an actor
    learner.checkpoint()                  # buffers, then the agent: its rename is the commit point

Per added transition:

    intervened? ──► demo buffer too (HIL-SERL: interventions teach like demonstrations)
    takeover (first intervened step, policy proposal known) and rlif_penalty > 0
         ──► the rejected proposal as a terminal transition worth -rlif_penalty (RLIF)
    online buffer holds >= learning_starts ──► one update is owed

Each update is one `agent.update` on `utd_ratio * batch_size` transitions drawn as `utd_ratio`
minibatches, each holding the online / demo mix (`MixedSampler(..., minibatches=utd_ratio)`).
The in-process loop, the vector loop and the ROS 2 learner node are the drivers; the node calls
`add` and `update_if_due` from two threads, so both take the core's locks.

With frozen camera encoders (`EncoderConfig.freeze_backbone`), both buffers cache each frame's pooled
features as it arrives and updates run on those; the buffers and the checkpoint keep the images.

Run directory (docs/learner.md): `checkpoint/` (the agent, the counters and RNG of the learner and
its driver), `replay/online.zarr` + `replay/demos.zarr` (both buffers), `metrics.jsonl` and
`tensorboard/` (scalars).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from tether.datasets.episode import EpisodeArrays
from tether.datasets.replay import MixedSampler, ReplayBuffer
from tether.datasets.replay_io import fill_replay, load_replay, save_replay
from tether.datasets.store import EpisodeStore
from tether.policies.checkpoint import TRAINING_FILE, load_checkpoint
from tether.policies.metrics import MetricsWriter
from tether.policies.networks import StrictConfig
from tether.policies.sac import SACAgent
from tether.types import Transition

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
"""The policy of the run's best evaluation (twin rollouts pick it, as they pick a diffusion policy's best/)."""
REPLAY_DIR = "replay"
ONLINE_STORE = "online.zarr"
DEMO_STORE = "demos.zarr"
LEARNER_STATE = "learner_state"
"""Key of the learner's counters and RNG in the checkpoint's training metadata."""
DRIVER_STATE = "driver_state"
"""Key of the driver's own resume state (episode counter, curve, expert RNG) beside it."""


class LoopConfig(StrictConfig):
    """Settings of the learner and its loops (the agent's own hyper-parameters are in SACConfig)."""

    steps: int = Field(20_000, ge=1)
    """Environment steps to run."""
    learning_starts: int = Field(100, ge=1)
    """Online transitions collected before the first update."""
    pretrain_updates: int = Field(0, ge=0)
    """`agent.update` calls on demo-only batches before the first online update (offline-to-online): the
    actor starts from what the demos show instead of from scratch. No environment step is spent on them."""
    random_steps: int = Field(0, ge=0)
    """Initial steps with uniformly random actions (RLPD uses none when demos are given)."""
    demo_fraction: float = Field(0.5, ge=0, le=1)
    """Share of every minibatch drawn from the demo buffer (RLPD/HIL-SERL: 50/50)."""
    buffer_capacity: int = Field(200_000, ge=2)
    """Slots of the online buffer and of the demo buffer."""
    rlif_penalty: float = Field(0.0, ge=0)
    """Reward -rlif_penalty for the proposal that made the expert take over (RLIF); 0 (the default) switches it
    off. Off beside the task reward: the penalty lands on the whole proposal, and most takeovers near the cube
    were about the gripper, so the arm's critic learnt that descending onto the cube is bad (docs/learner.md)."""
    task_reward: bool = True
    """Learn from the task's reward. False is RLIF alone: every reward the learner stores (online and demos) is
    0, and only a takeover's rejected proposal is worth -rlif_penalty (which must then be above 0)."""
    eval_every: int = Field(1_000, ge=1)
    """Environment steps between evaluations (one also runs at the end)."""
    eval_episodes: int = Field(10, ge=1)
    """Episodes per evaluation, with the deterministic policy."""
    checkpoint_every: int = Field(5_000, ge=1)
    """Environment steps between checkpoints (the in-process loop takes it at the next episode end)."""
    metrics_every: int = Field(100, ge=1)
    """Updates between metrics records (losses, Q, entropy averaged over them; rates over the window)."""

    @model_validator(mode="after")
    def _some_reward(self) -> LoopConfig:
        if not self.task_reward and self.rlif_penalty <= 0:
            raise ValueError("task_reward false leaves only the RLIF penalty as reward: set rlif_penalty above 0")
        return self


def rlif_transition(takeover: Transition, penalty: float) -> Transition:
    """RLIF: the proposal the human rejected at a takeover, as a terminal transition worth exactly -penalty."""
    if takeover.policy_action is None:
        raise ValueError("rlif_transition: the takeover step carries no policy proposal")
    proposal = takeover.policy_action
    return Transition(takeover.obs, proposal, -penalty, takeover.next_obs, True, False, False, proposal)


@dataclass
class DemoLoad:
    """What loading demonstrations from a store kept and skipped."""

    episodes: int
    transitions: int
    skipped: int
    """Episodes whose `meta/episodes` success is not true (failed, or never labelled): never demos."""


def load_demos(buffer: ReplayBuffer, path: Path,
               transform: Callable[[EpisodeArrays], EpisodeArrays] | None = None) -> DemoLoad:
    """Add a store's successful episodes to `buffer` (each through `transform`, if given).

    A failed demonstration teaches the actor's BC term and the demo half of every batch the wrong
    thing, so only episodes recorded with success true are used; the rest are counted and logged.
    """
    store = EpisodeStore(path)
    keep = [info.index for info in store.episodes if info.success is True]
    before = len(buffer)
    if transform is None:
        fill_replay(buffer, store, keep)
    else:  # read with the store's own keys, hand each episode over transformed
        staging = ReplayBuffer(store.observation_space, store.spec.action_dim,
                               max(sum(store.episodes[i].length + 1 for i in keep), 2))
        fill_replay(staging, store, keep)
        for episode in staging.episodes():
            buffer.add_episode(transform(episode))
    result = DemoLoad(episodes=len(keep), transitions=len(buffer) - before, skipped=store.n_episodes - len(keep))
    logger.info("demos: %d episodes, %d transitions from %s; %d failed or unlabelled episodes skipped",
                result.episodes, result.transitions, path, result.skipped)
    return result


@dataclass
class LearnerState:
    """The learner's counters and RNG: checkpointed, so a run resumes where it stopped."""

    env_steps: int = 0
    learning_steps: int = 0
    """Environment steps added once updates could begin: each is owed one `agent.update`."""
    updates: int = 0
    """`agent.update` calls made (each `utd_ratio` critic steps)."""
    updates_at_start: int = 0
    """The agent's critic updates when this run began (a warm-started agent may have some)."""
    interventions: int = 0
    update_seconds: float = 0.0
    demos_skipped: int = 0
    pretrained: bool = False
    """The offline phase (`LoopConfig.pretrain_updates`) ran."""
    rng: dict[str, Any] = field(default_factory=dict)
    """numpy bit-generator state of the learner's RNG (batch sampling; the loop's random actions)."""


@dataclass
class _Window:
    """What happened since the last metrics record (not checkpointed: rates over wall-clock time)."""

    started: float = field(default_factory=time.perf_counter)
    env_steps: int = 0
    interventions: int = 0
    updates: int = 0
    update_seconds: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)


class Learner:
    """Owns the buffers, their mixing, interventions, the update schedule, metrics and checkpoints of one agent."""

    def __init__(self, agent: SACAgent, config: LoopConfig, *, seed: int, run_dir: Path | None = None,
                 online: ReplayBuffer | None = None, demos: ReplayBuffer | None = None,
                 online_source: str = "policy", fps: float = 10.0, tensorboard: bool = True) -> None:
        self.agent, self.config, self.seed = agent, config, seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.online_source, self.fps = online_source, fps
        self.rng = np.random.default_rng(seed)
        space, action_dim = agent.observation_space, agent.action_dim
        self.online = online if online is not None else ReplayBuffer(space, action_dim, config.buffer_capacity)
        self.demos = demos if demos is not None else ReplayBuffer(space, action_dim, config.buffer_capacity)
        if not config.task_reward:
            self.demos.zero_rewards()
        self._cache_features()
        self.state = LearnerState(updates_at_start=int(agent.critic_updates))
        self.data_lock = threading.Lock()  # buffers and counters: held briefly by `add`
        self.agent_lock = threading.Lock()  # the networks: held for an update, a weights snapshot, a checkpoint
        self._was_intervening = False
        self._window = _Window()
        self._metrics = MetricsWriter(self.run_dir, tensorboard=tensorboard) if self.run_dir is not None else None

    # --- data in ----------------------------------------------------------------------

    def add(self, transition: Transition) -> None:
        """One environment step: into the online buffer (and the demo buffer if a person acted)."""
        takeover = transition.intervened and not self._was_intervening and transition.policy_action is not None
        if not self.config.task_reward:
            transition = replace(transition, reward=0.0)
        with self.data_lock:
            if takeover and self.config.rlif_penalty > 0:
                self.online.add(rlif_transition(transition, self.config.rlif_penalty))
            self.online.add(transition)
            if transition.intervened:
                self.demos.add(transition)
                self.state.interventions += 1
                self._window.interventions += 1
            self.state.env_steps += 1
            self._window.env_steps += 1
            if len(self.online) >= self.config.learning_starts:
                self.state.learning_steps += 1
        self._was_intervening = transition.intervened and not (transition.terminated or transition.truncated)

    def add_demos(self, path: Path, transform: Callable[[EpisodeArrays], EpisodeArrays] | None = None) -> DemoLoad:
        """A store's successful episodes into the demo buffer; the skipped count goes to the metrics."""
        with self.data_lock:
            result = load_demos(self.demos, path, transform)
            if not self.config.task_reward:
                self.demos.zero_rewards()
        self.note_demos(result)
        return result

    def note_demos(self, result: DemoLoad) -> None:
        """Record demos loaded before the learner existed (a driver that filled its demo buffer itself)."""
        self.state.demos_skipped += result.skipped
        self.log({"demo_episodes": result.episodes, "demo_transitions": result.transitions,
                  "demo_episodes_skipped": result.skipped})

    def _cache_features(self) -> None:
        """With frozen camera encoders, both buffers keep each frame's features (computed once) for the updates."""
        keys = self.agent.encoder.cached_keys
        if keys:
            for buffer in (self.online, self.demos):
                buffer.cache_features(self.agent.cache_features, keys)

    # --- updates ----------------------------------------------------------------------

    @property
    def updates_owed(self) -> int:
        return self.state.learning_steps - self.state.updates

    def update_if_due(self) -> dict[str, float] | None:
        """One `agent.update` if an environment step is still owed one; its metrics, else None."""
        with self.data_lock:
            if self.updates_owed <= 0:
                return None
        self.pretrain()
        with self.data_lock:
            utd = self.agent.config.utd_ratio
            batch = self._sampler().sample(utd * self.agent.config.batch_size, self.rng, minibatches=utd)
        start = time.perf_counter()
        with self.agent_lock:
            metrics = self.agent.update(batch)
        elapsed = time.perf_counter() - start
        with self.data_lock:
            self.state.updates += 1
            self.state.update_seconds += elapsed
            window = self._window
            window.updates += 1
            window.update_seconds += elapsed
            for key, value in metrics.items():
                window.sums[key] = window.sums.get(key, 0.0) + value
            due = window.updates >= self.config.metrics_every
        if due:
            self.flush_metrics()
        return metrics

    def pretrain(self, stop: threading.Event | None = None) -> bool:
        """`pretrain_updates` updates on the demo buffer alone, once per run (a resumed run does not repeat them).
        A driver calls it before its first step; the first online update calls it otherwise. `stop` cuts it short
        (a node shutting down); the phase then counts as not done. True if it made updates."""
        if self.state.pretrained:
            return False
        if not len(self.demos) or not self.config.pretrain_updates:
            self.state.pretrained = True
            return False
        utd = self.agent.config.utd_ratio
        demos_only = MixedSampler([self.demos])
        start, before = time.perf_counter(), int(self.agent.critic_updates)
        for _ in range(self.config.pretrain_updates):
            if stop is not None and stop.is_set():
                return False
            with self.data_lock:
                batch = demos_only.sample(utd * self.agent.config.batch_size, self.rng, minibatches=utd)
            with self.agent_lock:
                metrics = self.agent.update(batch)
        self.state.pretrained = True
        self.state.updates_at_start += int(self.agent.critic_updates) - before  # rates count online updates only
        self.log({f"pretrain/{k}": v for k, v in metrics.items()})
        logger.info("pretrained on %d demo transitions: %d updates in %.0f s", len(self.demos),
                    self.config.pretrain_updates, time.perf_counter() - start)
        return True

    def _sampler(self) -> MixedSampler:
        fraction = self.config.demo_fraction
        if len(self.demos) > 0 and fraction > 0:
            return MixedSampler([self.online, self.demos], [1 - fraction, fraction])
        return MixedSampler([self.online])

    @property
    def critic_updates(self) -> int:
        """Critic steps taken in this run (over resumes)."""
        return int(self.agent.critic_updates) - self.state.updates_at_start

    @property
    def updates_per_second(self) -> float:
        return self.critic_updates / self.state.update_seconds if self.state.update_seconds else 0.0

    @property
    def utd_achieved(self) -> float:
        """Critic updates per environment step since updates began."""
        return self.critic_updates / self.state.learning_steps if self.state.learning_steps else 0.0

    # --- weights out ------------------------------------------------------------------

    def policy_weights(self) -> tuple[dict[str, np.ndarray], dict[str, Any], int]:
        """A consistent snapshot for an actor: numpy weights, the agent's config JSON, and its version."""
        with self.agent_lock:
            weights = {k: v.detach().cpu().numpy().copy() for k, v in self.agent.state_dict().items()}
            return weights, self.agent.config_json(), int(self.agent.critic_updates)

    # --- metrics ----------------------------------------------------------------------

    def log(self, scalars: dict[str, float]) -> None:
        """A record at the current environment step (evaluation results, demo counts, a driver's own)."""
        if self._metrics is not None:
            self._metrics.write(self.state.env_steps, scalars)

    def flush_metrics(self) -> None:
        """Write the window since the last record: mean update metrics and rates."""
        with self.data_lock:
            window, self._window = self._window, _Window()
        if self._metrics is None or not window.updates:
            return
        means = {k: v / window.updates for k, v in window.sums.items()}
        wall = time.perf_counter() - window.started
        self.log({
            **{k: v for k, v in means.items() if k not in ("critic_updates", "actor_updates")},
            "critic_updates": float(self.critic_updates),
            "updates_per_s": window.updates * self.agent.config.utd_ratio / window.update_seconds
            if window.update_seconds else 0.0,
            "env_steps_per_s": window.env_steps / wall if wall > 0 else 0.0,
            "intervention_rate": window.interventions / window.env_steps if window.env_steps else 0.0,
            "online_transitions": float(len(self.online)),
            "demo_transitions": float(len(self.demos)),
        })

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()

    # --- persistence ------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        if self.run_dir is None:
            raise ValueError("Learner: no run_dir to checkpoint into")
        return self.run_dir / CHECKPOINT_DIR

    def has_checkpoint(self) -> bool:
        return self.run_dir is not None and (self.checkpoint_dir / TRAINING_FILE).is_file()

    def checkpoint(self, *, extra_config: dict[str, Any] | None = None,
                   driver_state: dict[str, Any] | None = None) -> Path:
        """Both buffers first, then the agent with the learner's and the driver's state (the commit point)."""
        directory = self.checkpoint_dir
        with self.agent_lock, self.data_lock:
            self.state.rng = self.rng.bit_generator.state
            replay = directory.parent / REPLAY_DIR
            save_replay(self.online, replay / ONLINE_STORE, source=self.online_source, fps=self.fps)
            save_replay(self.demos, replay / DEMO_STORE, source="hil", fps=self.fps)
            config = {"loop": json.loads(self.config.model_dump_json()), "env_steps": self.state.env_steps,
                      "seed": self.seed, **(extra_config or {})}
            meta = {LEARNER_STATE: asdict(self.state), DRIVER_STATE: driver_state or {}}
            return self.agent.save(directory, extra_config=config, extra_meta=meta)

    def save_policy(self, directory: Path, *, extra_config: dict[str, Any] | None = None) -> Path:
        """The agent as it is now, without buffers: what `tether eval` and `deploy` load."""
        config = {"env_steps": self.state.env_steps, "seed": self.seed, **(extra_config or {})}
        with self.agent_lock:
            return self.agent.save(directory, extra_config=config)

    def resume(self) -> dict[str, Any] | None:
        """Restore agent, buffers, counters and RNG from the run's checkpoint; the driver's state, or None if
        there is no checkpoint to resume from."""
        if not self.has_checkpoint():
            return None
        saved = load_checkpoint(self.checkpoint_dir, training=True)
        if LEARNER_STATE not in saved.training_meta:
            raise ValueError(f"{self.checkpoint_dir}: no learner state in its training metadata (written by an "
                             "older layout); start the run over in a new folder")
        with self.agent_lock, self.data_lock:
            self.agent.restore(saved, training=True)
            self.state = LearnerState(**saved.training_meta[LEARNER_STATE])
            self.rng.bit_generator.state = self.state.rng
            self.online = load_replay(self.run_dir / REPLAY_DIR / ONLINE_STORE)
            self.demos = load_replay(self.run_dir / REPLAY_DIR / DEMO_STORE)
            self._cache_features()
            self._was_intervening = False
        logger.info("resumed %s: %d env steps, %d critic updates, %d online and %d demo transitions",
                    self.run_dir, self.state.env_steps, int(self.agent.critic_updates), len(self.online),
                    len(self.demos))
        return saved.training_meta.get(DRIVER_STATE, {})
