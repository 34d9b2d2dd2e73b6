"""`tether eval --policy DIR --twin-replay STORE`: a checkpoint judged on twin renders of logged episodes."""

from __future__ import annotations

from pathlib import Path

import typer

from tether.cli.output import write_json
from tether.config import load_rig, parse_rig


def twin_replay_command(policy: Path, store_path: Path, rig: str | None, episodes: int, json_out: Path | None) -> None:
    """Replay up to `episodes` logged episodes through the mirror twin and report action and success agreement."""
    from tether.cli.eval import load_checked
    from tether.datasets.store import EpisodeStore, StoreError
    from tether.sim2real.mirror import MirrorTwin
    from tether.sim2real.twin_replay import replay_episode, summarise

    try:
        store = EpisodeStore(store_path)
    except StoreError as error:
        raise typer.BadParameter(str(error), param_hint="--twin-replay") from None
    if rig is not None:
        rig_config = load_rig(rig)
    elif store.rig is not None:
        rig_config = parse_rig(store.rig, f"{store_path} (rig snapshot)")
    else:
        raise typer.BadParameter(f"{store_path}: holds no rig snapshot; give --rig", param_hint="--rig")
    chosen = load_checked(policy, deterministic=True)
    mirror = MirrorTwin(rig_config)
    results = []
    try:
        for index in range(min(episodes, store.n_episodes)):
            chosen.reset()  # a chunked policy starts each episode afresh
            results.append(replay_episode(store, index, mirror, chosen.act, chosen.observation_keys))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--twin-replay") from None
    finally:
        mirror.close()
        chosen.close()
    if not results:
        raise typer.BadParameter(f"{store_path}: no committed episodes", param_hint="--twin-replay")
    summary = {"policy": str(policy), "store": str(store_path), "rig": rig_config.name, **summarise(results)}
    write_json(json_out, summary)
    cosine, grip = summary["direction_cosine"], summary["gripper_agreement"]
    typer.echo(
        f"twin replay of {summary['episodes']} episode(s): action MAE {summary['action_mae']:.3f}, "
        f"direction cosine {'n/a' if cosine is None else f'{cosine:.2f}'}, "
        f"gripper agreement {'n/a' if grip is None else f'{grip:.2f}'}, "
        f"twin success {summary['twin_success_rate']:.2f}"
        + (f" (logged {summary['logged_success_rate']:.2f})" if summary["logged_success_rate"] is not None else "")
    )
