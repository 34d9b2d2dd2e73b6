"""The online SAC training loop: a gymnasium env in, a checkpoint and a learning curve out.

The loop knows nothing of MuJoCo or ROS: the caller builds the env (the twin, or `RobotEnv`)
and, optionally, an expert that can take over (the scripted operator, or a person's teleop).

Per environment step:

    policy proposes a ──► intervention rule: expert takes over? ──► env.step(executed action)
         │                                                              │
         └─────── transition ──► online buffer (+ demo buffer if a human acted)
    then, once `learning_starts` online transitions exist:
         utd_ratio minibatches of batch_size, each demo_fraction from demos ──► agent.update

Buffers, RLIF, the update schedule, metrics and checkpoints are the learner core's
(`tether.policies.learner.Learner`); this loop only steps the env, asks the intervention rule who
acts, evaluates and writes the learning curve. (`CHECKPOINT_DIR`, `LoopConfig` and
`rlif_transition` are re-exported from the core for this loop's callers.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from tether.datasets.replay import ReplayBuffer
from tether.policies.learner import BEST_DIR, CHECKPOINT_DIR, DemoLoad, Learner, LoopConfig, rlif_transition  # noqa: F401
from tether.policies.sac import SACAgent
from tether.teleop.arbitration import TakeoverRule
from tether.types import ACTION_TAKEN, Observation, Transition

logger = logging.getLogger(__name__)

Policy = Callable[[Observation], np.ndarray]
CURVE_JSON = "curve.json"
CURVE_PNG = "curve.png"
EVAL_SEEDS = 1_000_000
"""A training run's evaluations play episodes EVAL_SEEDS + seed, + 1, ...: never an episode it trains on."""


class Expert(Protocol):
    """Anything that can act in the env in place of a person (the twin's ScriptedOperator does).

    An expert with its own randomness keeps it in an `rng` attribute (a numpy Generator), so a
    checkpointed run can restore it and resume exactly.
    """

    def reset(self) -> None: ...

    def act(self, env: gym.Env) -> np.ndarray: ...


class Intervention(Protocol):
    """Decides, each step, whether a human overrides the policy. None: the policy acts."""

    def reset(self) -> None: ...

    def __call__(self, obs: Observation, proposal: np.ndarray) -> np.ndarray | None: ...


def _rng_of(intervention: Intervention | None) -> np.random.Generator | None:
    """The random generator behind an intervention rule's expert, if it has one (checkpointed with the loop)."""
    rng = getattr(getattr(intervention, "expert", None), "rng", None)
    return rng if isinstance(rng, np.random.Generator) else None


class ExpertTakeover:
    """Scripted stand-in for a person watching the robot: takes over when the policy strays.

    Each step the expert says what it would do, and `tether.teleop.arbitration.TakeoverRule` (the
    rule the ROS 2 graph's scripted operator uses too) decides whether it acts: after `patience`
    consecutive strays it takes over for `hold_steps` steps, as a person holding the SpaceMouse for a
    moment (the rig's teleop sticky time).
    """

    def __init__(self, expert: Expert, env: gym.Env, **rule: Any) -> None:
        self.expert, self.env = expert, env
        self.rule = TakeoverRule(**rule)

    def reset(self) -> None:
        self.expert.reset()
        self.rule.reset()

    def __call__(self, obs: Observation, proposal: np.ndarray) -> np.ndarray | None:
        wanted = np.asarray(self.expert.act(self.env), dtype=np.float32)  # the expert watches every step
        return wanted if self.rule.step(proposal, wanted) else None


@dataclass
class EvalResult:
    """Outcome of evaluating a policy for some episodes."""

    success_rate: float
    mean_length: float
    mean_return: float
    successes: list[bool]
    lengths: list[int]
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    """Frames of the first episode (camera image or env render), if `record` was asked."""


def evaluate(policy: Policy, env: gym.Env, episodes: int, *, seed: int, record: bool = False,
             progress: bool = False) -> EvalResult:
    """Run `episodes` episodes with seeds seed, seed+1, ...; success is info['success'] at the end."""
    successes, lengths, returns, frames = [], [], [], []
    # With `progress`, a bar where stderr is a terminal (tqdm's disable=None).
    for episode in tqdm(range(episodes), desc="eval", unit="episode", disable=None if progress else True):
        obs, info = env.reset(seed=seed + episode)
        done, length, total = False, 0, 0.0
        while not done:
            if record and episode == 0:
                frames.append(_frame(env, obs))
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            done, length, total = terminated or truncated, length + 1, total + float(reward)
        if record and episode == 0:
            frames.append(_frame(env, obs))
        successes.append(bool(info.get("success", False)))
        lengths.append(length)
        returns.append(total)
    return EvalResult(
        success_rate=float(np.mean(successes)), mean_length=float(np.mean(lengths)),
        mean_return=float(np.mean(returns)), successes=successes, lengths=lengths, frames=frames,
    )


def _frame(env: gym.Env, obs: Observation) -> np.ndarray:
    """The first camera image of the observation, else the env's rgb render."""
    images = sorted(k for k in obs if k.startswith("images/"))
    if images:
        return np.asarray(obs[images[0]])
    frame = env.render()
    if frame is None:
        raise ValueError("evaluate(record=True): the observation has no image and env.render() returned None "
                         "(make the env with render_mode='rgb_array')")
    return np.asarray(frame)


def collect_demos(env: gym.Env, expert: Expert, episodes: int, buffer: ReplayBuffer, *, seed: int,
                  successful_only: bool = True, max_attempts: int | None = None) -> int:
    """Fill `buffer` with the expert's episodes (marked intervened: a 'human' acted); returns how many were kept."""
    kept, attempt = 0, 0
    limit = max_attempts if max_attempts is not None else 3 * episodes
    while kept < episodes:
        if attempt >= limit:
            raise RuntimeError(f"collect_demos: only {kept} of {episodes} expert episodes succeeded in {limit} attempts")
        obs, _ = env.reset(seed=seed + attempt)
        expert.reset()
        attempt += 1
        steps, info, done = [], {}, False
        while not done:
            action = np.asarray(expert.act(env), dtype=np.float32)
            next_obs, reward, terminated, truncated, info = env.step(action)
            taken = np.asarray(info.get(ACTION_TAKEN, action), dtype=np.float32)
            steps.append(Transition(obs, taken, float(reward), next_obs, terminated, truncated, intervened=True))
            obs, done = next_obs, terminated or truncated
        if successful_only and not info.get("success", False):
            continue
        for transition in steps:
            buffer.add(transition)
        kept += 1
    return kept


@dataclass
class TrainResult:
    """What a run produced: the learning curve and the learner's throughput."""

    curve: list[dict[str, float]]
    env_steps: int
    learning_steps: int
    """Environment steps taken since updates began."""
    critic_updates: int
    update_seconds: float
    interventions: int

    @classmethod
    def of(cls, learner: Learner, curve: list[dict[str, float]]) -> TrainResult:
        state = learner.state
        return cls(curve=curve, env_steps=state.env_steps, learning_steps=state.learning_steps,
                   critic_updates=learner.critic_updates, update_seconds=state.update_seconds,
                   interventions=state.interventions)

    @property
    def updates_per_second(self) -> float:
        return self.critic_updates / self.update_seconds if self.update_seconds else 0.0

    @property
    def utd_achieved(self) -> float:
        """Critic updates per environment step since updates began."""
        return self.critic_updates / self.learning_steps if self.learning_steps else 0.0


@dataclass
class LoopState:
    """The loop's own resume state, checkpointed beside the learner's counters."""

    episode: int = 0
    last_checkpoint: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    expert_rng: dict[str, Any] = field(default_factory=dict)
    """State of the intervening expert's RNG as the current episode began (before its reset)."""
    wall_s: float = 0.0
    """Wall seconds of training in earlier sittings, up to their last checkpoint."""


def train_sac(
    agent: SACAgent,
    env: gym.Env,
    config: LoopConfig,
    *,
    seed: int,
    demos: ReplayBuffer | None = None,
    online: ReplayBuffer | None = None,
    demo_load: DemoLoad | None = None,
    intervention: Intervention | None = None,
    eval_env: gym.Env | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    checkpoint_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `agent` online in `env`; evaluate in `eval_env` every `eval_every` steps; write to `out_dir`.

    The loop steps the env and decides who acts; the `Learner` does the rest. `demos` and `online`
    default to empty buffers of `buffer_capacity`; pass them to start from (or inspect) their contents
    (`demo_load` says how `demos` was filled, for the metrics). Interventions are added to both.

    Checkpoints (agent, learner and loop counters and RNG, both buffers) are written at the first
    episode end after every `checkpoint_every` steps, and at the last step. With `resume` and a checkpoint
    in `out_dir`, the run continues from it; resuming from an episode-end checkpoint repeats the
    uninterrupted run exactly, interventions included when the expert keeps its randomness in `rng`.
    `checkpoint_config` (JSON) goes into every checkpoint's config.json, e.g. the frozen base policy that
    `env` steers, which a loader needs to act.
    """
    action_dim = env.action_space.shape[0]
    if action_dim != agent.action_dim:
        raise ValueError(f"env action_dim {action_dim} differs from the agent's {agent.action_dim}")
    learner = Learner(agent, config, seed=seed, run_dir=out_dir, online=online, demos=demos,
                      fps=env.metadata.get("render_fps", 10))
    state = LoopState()
    expert_rng = _rng_of(intervention)
    saved = learner.resume() if resume else None
    if saved is not None:
        state = LoopState(**saved)
        if expert_rng is not None and state.expert_rng:
            expert_rng.bit_generator.state = state.expert_rng
        logger.info("resuming %s at step %d (episode %d)", out_dir, learner.state.env_steps, state.episode)
    elif demo_load is not None:
        learner.note_demos(demo_load)

    def new_episode() -> Observation:
        obs, _ = env.reset(seed=seed + state.episode)
        if intervention is not None:
            if expert_rng is not None:
                state.expert_rng = expert_rng.bit_generator.state
            intervention.reset()
        return obs

    sitting = time.perf_counter()
    wall_before = state.wall_s
    learner.pretrain()
    obs = new_episode()
    bar = tqdm(range(learner.state.env_steps + 1, config.steps + 1), desc="sac", disable=not progress, unit="step")
    for step in bar:
        if step <= config.random_steps:
            proposal = learner.rng.uniform(-1, 1, action_dim).astype(np.float32)
        else:
            proposal = agent.act(obs)
        human = intervention(obs, proposal) if intervention is not None else None
        action = proposal if human is None else human
        next_obs, reward, terminated, truncated, info = env.step(action)
        taken = np.asarray(info.get(ACTION_TAKEN, action), dtype=np.float32)  # what was executed, not what was asked
        learner.add(Transition(obs, taken, float(reward), next_obs, terminated, truncated,
                               intervened=human is not None, policy_action=proposal))
        obs = next_obs
        episode_ended = terminated or truncated
        if episode_ended:
            state.episode += 1
            obs = new_episode()
        learner.update_if_due()

        if eval_env is not None and (step % config.eval_every == 0 or step == config.steps):
            point = _evaluate_point(learner, eval_env, state, seed, wall_before + time.perf_counter() - sitting)
            bar.set_postfix(success=f"{point['success_rate']:.2f}")
            if out_dir is not None:
                write_curve(state.curve, out_dir)
                if point["success_rate"] == max(p["success_rate"] for p in state.curve):  # ties: the later policy
                    learner.save_policy(out_dir / BEST_DIR, extra_config=checkpoint_config)
        due = episode_ended and step - state.last_checkpoint >= config.checkpoint_every
        if out_dir is not None and (due or step == config.steps):
            state.last_checkpoint = step
            state.wall_s = wall_before + time.perf_counter() - sitting
            learner.checkpoint(extra_config=checkpoint_config, driver_state=asdict(state))
    learner.flush_metrics()
    learner.close()
    return TrainResult.of(learner, state.curve)


def _evaluate_point(
    learner: Learner, eval_env: gym.Env, state: LoopState, seed: int, wall_s: float
) -> dict[str, float]:
    """Evaluate the deterministic policy, append a point to the learning curve (with the run's wall seconds so
    far, over all its sittings) and the metrics."""
    agent, config, counters = learner.agent, learner.config, learner.state
    result = evaluate(lambda o: agent.act(o, deterministic=True), eval_env, config.eval_episodes, seed=EVAL_SEEDS + seed)
    point = {
        "env_steps": counters.env_steps, "success_rate": result.success_rate, "mean_length": result.mean_length,
        "critic_updates": learner.critic_updates, "utd_achieved": learner.critic_updates / max(counters.learning_steps, 1),
        "updates_per_s": learner.updates_per_second,
        "intervention_rate": counters.interventions / counters.env_steps, "episodes": state.episode,
        "wall_s": wall_s,
    }
    state.curve.append(point)
    learner.log({"eval/success_rate": result.success_rate, "eval/mean_length": result.mean_length,
                 "eval/mean_return": result.mean_return})
    logger.info("step %d: success %.2f, length %.1f, %.1f updates/s, UTD %.2f, interventions %.2f",
                counters.env_steps, result.success_rate, result.mean_length, point["updates_per_s"],
                point["utd_achieved"], point["intervention_rate"])
    return point


def write_curve(curve: list[dict[str, float]], out_dir: Path, title: str = "SAC") -> None:
    """curve.json and curve.png (success rate and intervention rate against environment steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CURVE_JSON).write_text(json.dumps(curve, indent=2) + "\n")
    steps = [p["env_steps"] for p in curve]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(steps, [p["success_rate"] for p in curve], marker="o", label="success rate")
    axis.plot(steps, [p["intervention_rate"] for p in curve], linestyle="--", label="intervention rate")
    axis.set(xlabel="environment steps", ylim=(-0.02, 1.02), title=title)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out_dir / CURVE_PNG, dpi=120)
    plt.close(figure)


def result_json(result: TrainResult) -> dict[str, Any]:
    """The run summary as JSON-able values."""
    return {**asdict(result), "updates_per_second": result.updates_per_second, "utd_achieved": result.utd_achieved}
