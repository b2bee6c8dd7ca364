"""Bad input, as a new user would try it: every command-line case and every API case ends in
one line that names the field, the value and what is allowed, never in a traceback and
never in a silent acceptance. The table of these cases is docs/bad_inputs.md.

The command-line cases run ``larvax.cli.main`` in-process; each fails before anything is
compiled, except the few that build the tiny test agent of loop_helpers.py.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from larvax.cli import main  # noqa: E402
from loop_helpers import dummy_config, stager_config  # noqa: E402

CORES = os.cpu_count() or 1
SYS_PATHS = Path("/sys").is_dir()  # a tree no one may create files in (root included)

# (test id, argv after `larvax` with {PLACEHOLDERS}, exit code, regex searched in the last
# stderr line, a note for the table). Placeholders: {T} a scratch folder, {RUN} a finished
# run of the dummy agent, {EDITED} that run with config.yaml edited, {NOCK} with checkpoints/
# deleted, {SF} a Simfish "run" (config.yaml only), {SRC} a finished stager run (network w of
# width 3), {FILE} a plain file, {OTHER} a folder with other files; {TOO_MANY} cores + 1.
E = "larvax: error: "
CLI_CASES = [
    # --------------------------------------------------------------- train: preset and --set
    ("train-preset-misspelt", "train --preset r2d2-simfsh", 2,
     E + r"unknown preset 'r2d2-simfsh'; allowed: .*\br2d2-simfish\b", ""),
    ("train-set-misspelt-agent-field", "train --set agent_config.batch_sise=64", 2,
     E + r"R2D2Config: unknown field\(s\) \['batch_sise'\]; allowed: burn_in, .*batch_size", ""),
    ("train-set-unknown-key", "train --set nokey=1", 2,
     E + r"--set nokey: unknown key; allowed top-level keys: name, description, agent", ""),
    ("train-set-no-equals", "train --set seed", 2, E + r"--set expects key=value, got 'seed'", ""),
    ("train-set-empty-key", "train --set =5", 2, E + r"--set expects key=value, got '=5'", ""),
    ("train-set-wrong-type", "train --set agent_config.batch_size=abc", 2,
     E + r"agent_config.batch_size: expected an int, got 'abc'$", ""),
    ("train-set-bool-for-int", "train --set agent_config.batch_size=true", 2,
     E + r"agent_config.batch_size: expected an int, got 'true'$", ""),
    ("train-set-negative-batch", "train --set agent_config.batch_size=-1", 2,
     E + r"R2D2Config.batch_size=-1 is not allowed; allowed: an int >= 1$", ""),
    ("train-set-infinite-lr", "train --set agent_config.learning_rate=inf", 2,
     E + r"R2D2Config.learning_rate=inf is not allowed; allowed: a finite number > 0.0$", ""),
    ("train-set-batch-above-replay", "train --set agent_config.batch_size=1e9", 2,
     E + r"R2D2Config.batch_size=1000000000 is not allowed; allowed: <= min_replay_size=\d+$",
     ""),
    ("train-set-num-envs-vs-capacity", "train --set agent_config.num_envs=3", 2,
     E + r"R2D2Config.replay_capacity=\d+ is not allowed; allowed: a multiple of num_envs=3$",
     ""),
    ("train-set-epsilon-min-above-max", "train --set agent_config.epsilon_min=0.5", 2,
     E + r"R2D2Config.epsilon_min=0.5 is not allowed; allowed: a number <= epsilon_max=[\d.]+$", ""),
    ("train-set-ppo-minibatches", "train --preset ppo-repeat-first-easy "
     "--set agent_config.num_minibatches=3", 2,
     E + r"PPOConfig.num_minibatches=3 is not allowed; allowed: a divisor of num_envs=16", ""),
    ("train-set-env-negative", "train --set env.prey_num=-5", 2,
     E + r"env: SimfishParams.prey_num=-5 is not allowed; allowed: an int >= 0$", ""),
    ("train-set-env-misspelt", "train --set env.prey_nmu=5", 2,
     E + r"env: SimfishParams has no field 'prey_nmu' \(value 5\); allowed: \['arena_height'", ""),
    ("train-set-env-wrong-type", "train --set env.max_steps=abc", 2,
     E + r"env.max_steps: expected an int, got 'abc'$", ""),
    ("train-set-memory-env-unknown-arg", "train --preset ppo-repeat-first-easy --set env.foo=1",
     2, E + r"env: RepeatFirstEasy: unknown argument 'foo' \(value 1\); allowed: num_decks$", ""),
    ("train-set-env-not-a-mapping", "train --set env=5", 2,
     E + r"env: expected a mapping like \{a: 1\}, got '5'$", ""),
    ("train-set-unknown-env", "train --set env.name=nosuch", 2,
     E + r"env: unknown environment 'nosuch'; allowed: AutoencodeEasy, ", ""),
    ("train-set-unknown-network", "train --set network.name=nosuch", 2,
     E + r"unknown model 'nosuch'; allowed: actor_critic, .*recurrent_q", ""),
    ("train-set-network-misspelt-arg", "train --preset ppo-repeat-first-easy "
     "--set network.hiddn=[4]", 2,
     E + r"shared_actor_critic \(SharedActorCritic\): bad arguments: got an unexpected "
     r"keyword argument 'hiddn'$", ""),
    ("train-set-network-list-type", "train --preset ppo-repeat-first-easy --set network.hidden=abc",
     2, E + r"network.hidden: expected a list like \[64, 64\], got 'abc'$", ""),
    ("train-set-unknown-torso", "train --preset ppo-repeat-first-easy --set torso=transformer", 2,
     E + r"torso='transformer' is unknown; allowed: lstm, gru, .*mlp$", ""),
    ("train-set-network-num-actions", "train --set network.num_actions=5", 2,
     E + r"network.num_actions=5 does not match the environment: its action space has 21 "
     r"actions; .* or set it to 21$", ""),
    ("train-set-unknown-agent", "train --set agent=sac", 2,
     E + r"agent: unknown agent 'sac'; allowed: .*ppo, r2d2", ""),
    ("train-set-zero-budget", "train --set total_env_steps=0", 2,
     E + r"total_env_steps: must be >= 1, got 0$", ""),
    ("train-set-zero-chunk", "train --set chunk_updates=0", 2,
     E + r"chunk_updates: must be >= 1, got 0$", ""),
    ("train-set-keep-no-checkpoint", "train --set keep_checkpoints=0", 2,
     E + r"keep_checkpoints: must be >= 1, got 0$", ""),
    ("train-set-negative-interval", "train --set checkpoint_every_seconds=-1", 2,
     E + r"checkpoint_every_seconds: must be >= 0, got -1$", ""),
    ("train-set-negative-wall-time", "train --set max_wall_time_s=-1", 2,
     E + r"max_wall_time_s: must be >= 0 \(0 = no limit\), got -1.0$", ""),
    ("train-set-negative-seed", "train --set seed=-3", 2, E + r"seed: must be >= 0, got -3$", ""),
    # --------------------------------------------------------------- train: --steps, --seed
    ("train-steps-zero", "train --steps 0", 2, E + r"--steps must be >= 1, got 0$", ""),
    ("train-steps-negative", "train --steps -5", 2, E + r"--steps must be >= 1, got -5$", ""),
    ("train-steps-not-a-number", "train --steps abc", 2,
     r"^larvax train: error: argument --steps: invalid int value: 'abc'$", "argparse"),
    ("train-steps-fraction", "train --steps 1.5", 2,
     r"^larvax train: error: argument --steps: invalid int value: '1.5'$", "argparse"),
    ("train-seed-not-a-number", "train --seed abc", 2,
     r"^larvax train: error: argument --seed: invalid int value: 'abc'$", "argparse"),
    ("train-seed-negative", "train --seed -1", 2, E + r"seed: must be >= 0, got -1$", ""),
    # --------------------------------------------------------------- train: --config
    ("train-config-missing", "train --config {T}/missing.yaml", 2,
     E + r"config file '.*/missing.yaml' does not exist$", ""),
    ("train-config-not-yaml", "train --config {T}/notyaml.yaml", 2,
     E + r"config file '.*/notyaml.yaml' is not valid YAML: while parsing a flow sequence: "
     r"expected ',' or '\]', but got '<stream end>' at line 2, column 1$",
     "the file holds `a: [b`"),
    ("train-config-list", "train --config {T}/list.yaml", 2,
     E + r"config file '.*/list.yaml' must hold a mapping, got list$", "the file holds `- a`"),
    ("train-config-misspelt-key", "train --config {T}/typo.yaml", 2,
     E + r"unknown config key\(s\) \['agnet'\] \(did you mean 'agent'\?\); allowed: name, ",
     "the file holds `agnet: ppo`"),
    ("train-config-section-type", "train --config {T}/envint.yaml", 2,
     E + r"env: expected dict, got 5$", "the file holds `env: 5`"),
    ("train-config-agent-config-list", "train --config {T}/agentcfg.yaml", 2,
     E + r"agent_config: expected dict, got \[1, 2\]$", "the file holds `agent_config: [1, 2]`"),
    ("train-config-fractional-budget", "train --config {T}/frac.yaml", 2,
     E + r"total_env_steps: expected int, got 2.5$", "the file holds `total_env_steps: 2.5`"),
    ("train-set-section-without-name", "train --set network={{}}", 2,
     E + r"network.name is required \(e.g. network: \{name: ...\}\)$", ""),
    # --------------------------------------------------------------- train: curricula
    ("train-stage-unknown-key", "train --config {T}/st_unknown.yaml", 2,
     E + r"stages\[0\].speed=3 is not allowed; allowed: keys name, env, agent_config, "
     r"max_env_steps, advance, carry_replay$", "a stage with `speed: 3`"),
    ("train-stage-missing-budget", "train --config {T}/st_missing.yaml", 2,
     E + r"stages\[0\].max_env_steps=None is not allowed; allowed: an int >= 1 \(every stage "
     r"but the last\)$", "two stages, the first without max_env_steps"),
    ("train-stage-unknown-metric", "train --config {T}/st_metric.yaml --run-dir {T}/r-metric", 2,
     E + r"stages\[0\].advance.metric='prey_eaten' is not allowed; allowed: episode_return, "
     r"episode_length$", "`advance: {metric: prey_eaten, threshold: 1}`"),
    ("train-stage-not-a-list", "train --config {T}/st_notlist.yaml", 2,
     E + r"stages: expected list, got \{'a': 1\}$", "`stages: {a: 1}`"),
    ("train-stage-other-env", "train --config {T}/st_env.yaml", 2,
     E + r"stages\[0\].env.name='simfish' is not allowed; allowed: 'count' \(the run's env\)$",
     "a stage with `env: {name: simfish}` in a run on `count`"),
    # --------------------------------------------------------------- train: run directory
    ("train-run-dir-holds-a-run", "train --config {T}/dummy.yaml --run-dir {RUN}", 2,
     E + r"run directory '.*/run' already holds a run; continue it with `larvax train --resume ",
     ""),
    ("train-run-dir-parent-is-a-file", "train --config {T}/dummy.yaml --run-dir {FILE}/run", 2,
     E + r"cannot create run directory '.*/file/run': Not a directory$", ""),
    ("train-run-dir-is-a-file", "train --config {T}/dummy.yaml --run-dir {FILE}", 2,
     E + r"run directory '.*/file' is a file, not a directory$", ""),
    ("train-run-dir-not-empty", "train --config {T}/dummy.yaml --run-dir {OTHER}", 2,
     E + r"run directory '.*/other' is not empty and is not a larvax run; choose a new or empty",
     ""),
    ("train-run-dir-unwritable", "train --config {T}/dummy.yaml --run-dir /sys/larvax/run", 2,
     E + r"cannot create run directory '/sys/larvax/run': (Operation not permitted|Permission "
     r"denied|Read-only file system)", ""),
    # --------------------------------------------------------------- train: --resume
    ("train-resume-not-a-run", "train --resume {OTHER}", 2,
     E + r"'.*/other' is not a larvax run directory \(no config.yaml\)$", ""),
    ("train-resume-nowhere", "train --resume {T}/nowhere", 2,
     E + r"'.*/nowhere' is not a larvax run directory \(no config.yaml\)$", ""),
    ("train-resume-steps-not-a-run", "train --resume {OTHER} --steps 100", 2,
     E + r"'.*/other' is not a larvax run directory \(no config.yaml\)$", ""),
    ("train-resume-edited-config", "train --resume {EDITED}", 2,
     E + r".*/edited/config.yaml was edited after the run started \(its sha256 differs from "
     r"run.json's config_sha256\); undo the edit", "the seed in config.yaml changed"),
    ("train-resume-missing-checkpoints", "train --resume {NOCK}", 2,
     E + r".*/nock/checkpoints is missing but metrics.csv has 1 rows: nothing to continue them "
     r"from; restore the checkpoints, or start a new run", "checkpoints/ deleted"),
    ("train-resume-with-preset", "train --resume {RUN} --preset ppo-cartpole", 2,
     E + r"--resume takes only the run directory \(and optionally --steps", ""),
    ("train-resume-with-seed", "train --resume {RUN} --seed 3", 2,
     E + r"--resume takes only the run directory \(and optionally --steps", ""),
    # --------------------------------------------------------------- train: other flags
    ("train-cpu-devices-zero", "train --cpu-devices 0", 2,
     E + r"--cpu-devices=0 is not allowed; allowed: an int >= 1$", ""),
    ("train-cpu-devices-above-cores", "train --cpu-devices {TOO_MANY}", 2,
     E + rf"--cpu-devices={CORES + 1} is more than this machine's {CORES} CPU cores; allowed: "
     rf"1..{CORES}$", f"{CORES + 1} on {CORES} cores"),
    ("train-log-every-zero", "train --log-every 0", 2,
     E + r"--log-every=0.0 is not allowed; allowed: seconds > 0$", ""),
    ("train-log-every-negative", "train --log-every -2", 2,
     E + r"--log-every=-2.0 is not allowed; allowed: seconds > 0$", ""),
    ("train-init-from-nowhere", "train --config {T}/dummy.yaml --init-from {T}/nowhere "
     "--run-dir {T}/r-init", 2,
     E + r"--init-from '.*/nowhere' is not allowed; allowed: a larvax run directory \(with "
     r"config.yaml and checkpoints\) or a pretrained model", ""),
    ("train-init-from-mismatched-network", "train --config {T}/wide.yaml --init-from {SRC} "
     "--run-dir {T}/r-wide", 2,
     E + r"--init-from .*/src: its network does not fit this run's environment or network: "
     r"'params/w' has shape \(3,\) there, this run needs \(4,\)$",
     "a source network of width 3, this run's of width 4"),
    ("train-unknown-flag", "train --nosuchflag", 2,
     r"^larvax: error: unrecognized arguments: --nosuchflag$", "argparse"),
    ("command-misspelt", "trian", 2,
     r"^larvax: error: argument command: invalid choice: 'trian' \(choose from .*'train'",
     "argparse"),
    ("models-extra-argument", "models extra", 2,
     r"^larvax: error: unrecognized arguments: extra$", "argparse"),
    # --------------------------------------------------------------- eval
    ("eval-not-a-run", "eval {OTHER}", 2,
     E + r"'.*/other' is not a larvax run directory \(no config.yaml\)$", ""),
    ("eval-a-file", "eval {FILE}", 2,
     E + r"'.*/file' is not a larvax run directory \(no config.yaml\)$", ""),
    ("eval-nothing", "eval", 2, E + r"give a RUN_DIR or --pretrained NAME \(one of them\)$", ""),
    ("eval-run-and-pretrained", "eval {RUN} --pretrained hunter-normal", 2,
     E + r"give a RUN_DIR or --pretrained NAME \(one of them\)$", ""),
    ("eval-pretrained-unknown", "eval --pretrained nosuch", 2,
     E + r"--pretrained 'nosuch' is not allowed; allowed: ", ""),
    ("eval-episodes-zero", "eval {RUN} --episodes 0", 2,
     E + r"--episodes=0 is not allowed; allowed: an int >= 1$", ""),
    ("eval-episodes-negative", "eval {RUN} --episodes -1", 2,
     E + r"--episodes=-1 is not allowed; allowed: an int >= 1$", ""),
    ("eval-epsilon-above-one", "eval {RUN} --epsilon 2", 2,
     E + r"--epsilon=2.0 is not allowed; allowed: a number from 0 to 1$", ""),
    ("eval-batch-zero", "eval {RUN} --batch 0", 2,
     E + r"--batch=0 is not allowed; allowed: an int >= 1$", ""),
    ("eval-chunk-zero", "eval {RUN} --chunk 0", 2,
     E + r"--chunk=0 is not allowed; allowed: an int >= 1$", ""),
    ("eval-unknown-world", "eval {RUN} --world mars", 2,
     E + r"unknown world 'mars'; allowed: train, normal, empty, ", ""),
    ("eval-world-on-a-non-simfish-run", "eval {RUN} --world normal --out {T}/e-world", 2,
     E + r"--world 'normal' / --stimulus need a Simfish run$", ""),
    ("eval-set-without-env-prefix", "eval {RUN} --set prey_num=3", 2,
     E + r"--set 'prey_num=3' is not allowed; allowed: env.KEY=VALUE$", ""),
    ("eval-set-unknown-env-field", "eval {SF} --set env.nokey=1 --out {T}/e-key", 2,
     E + r"--set env.nokey: SimfishParams has no field 'nokey'; allowed: \['arena_height'", ""),
    ("eval-set-bad-env-value", "eval {SF} --set env.prey_num=-1 --out {T}/e-value", 2,
     E + r"--set env.prey_num=-1 is not allowed; allowed: an int >= 0$", ""),
    ("eval-stimulus-missing", "eval {RUN} --stimulus {T}/missing.npz", 2,
     E + r"--stimulus '.*/missing.npz' does not exist$", ""),
    ("eval-checkpoint-missing", "eval {RUN} --checkpoint 999 --out {T}/e-ckpt", 2,
     E + r"checkpoint 999 not in .*/run/checkpoints; available: \[2\]$", ""),
    ("eval-checkpoint-not-a-number", "eval {RUN} --checkpoint abc", 2,
     r"^larvax eval: error: argument --checkpoint: invalid int value: 'abc'$", "argparse"),
    ("eval-out-unwritable", "eval {RUN} --out /sys/larvax/out", 2,
     E + r"--out '/sys/larvax/out' is not writable \((Operation not permitted|Permission "
     r"denied|Read-only file system)\)$", ""),
    # --------------------------------------------------------------- render
    ("render-no-out", "render --random", 2,
     r"^larvax render: error: the following arguments are required: --out$", "argparse"),
    ("render-out-extension", "render --random --out {T}/x.avi", 2,
     E + r"--out '.*/x.avi' has extension '.avi'; allowed: .mp4, .gif$", ""),
    ("render-out-missing-folder", "render --random --out {T}/nodir/a.gif", 2,
     E + r"--out '.*/nodir/a.gif': directory '.*/nodir' does not exist$", ""),
    ("render-out-unwritable", "render --random --out /sys/a.gif", 2,
     E + r"--out '/sys/a.gif' is not writable", ""),
    ("render-no-source", "render --out {T}/a.gif", 2,
     E + r"give exactly one of RUN_DIR, --random, --log FILE$", ""),
    ("render-two-sources", "render {RUN} --random --out {T}/a.gif", 2,
     E + r"give exactly one of RUN_DIR, --random, --log FILE$", ""),
    ("render-log-missing", "render --log {T}/missing.hdf5 --out {T}/a.gif", 2,
     E + r"log file '.*/missing.hdf5' does not exist$", ""),
    ("render-log-not-hdf5", "render --log {FILE} --out {T}/a.gif", 2,
     E + r"log file '.*/file' is not an HDF5 file", ""),
    ("render-log-folder-without-logs", "render --log {OTHER} --out {T}/a.gif", 2,
     E + r"'.*/other' holds no logs_\*.hdf5 episode logs$", ""),
    ("render-run-nowhere", "render {T}/nowhere --out {T}/a.gif", 2,
     E + r"run directory '.*/nowhere' does not exist$", ""),
    ("render-episode-zero", "render {RUN} --episode 0 --out {T}/a.gif", 2,
     E + r"--episode 0 is out of range; allowed: an int >= 1$", ""),
    ("render-episode-with-random", "render --random --episode 2 --out {T}/a.gif", 2,
     E + r"--episode applies to RUN_DIR and --log DIR, not --random$", ""),
    ("render-steps-zero", "render --random --steps 0 --out {T}/a.gif", 2,
     E + r"--steps=0 is not allowed; allowed: an int >= 1$", ""),
    ("render-every-zero", "render --random --every 0 --out {T}/a.gif", 2,
     E + r"--every=0 is not allowed; allowed: an int >= 1$", ""),
    ("render-fps-zero", "render --random --fps 0 --out {T}/a.gif", 2,
     E + r"--fps=0.0 is not allowed; allowed: a number > 0$", ""),
    ("render-size-tiny", "render --random --size 10 --out {T}/a.gif", 2,
     E + r"--size=10 is not allowed; allowed: an int >= 64$", ""),
    ("render-unknown-preset", "render --random --preset nosuch --out {T}/a.gif", 2,
     E + r"Simfish.preset='nosuch' is not allowed; allowed: 'normal', 'sparse', 'empty', "
     r"'stage1'$", ""),
    # --------------------------------------------------------------- plot
    ("plot-nothing", "plot", 2,
     r"^larvax plot: error: the following arguments are required: RUN_DIR\|EVAL_DIR$",
     "argparse"),
    ("plot-nowhere", "plot {T}/nowhere", 2, E + r"'.*/nowhere' is not a directory$", ""),
    ("plot-a-file", "plot {FILE}", 2, E + r"'.*/file' is not a directory$", ""),
    ("plot-folder-without-data", "plot {OTHER}", 2,
     E + r"'.*/other' holds neither metrics.csv \(a run directory\) nor logs_\*.hdf5 \(an "
     r"evaluation directory\)$", ""),
    ("plot-out-is-a-file", "plot {RUN} --out {FILE}", 2,
     E + r"--out '.*/file' cannot be created \(File exists\)$", ""),
]  # fmt: skip


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict:
    """The files and run directories the command-line cases point at."""
    from larvax.training.loop import run

    t = tmp_path_factory.mktemp("bad_inputs")
    run_dir = t / "run"
    run(dummy_config(), run_dir=run_dir, progress=False, max_chunks=1)
    edited = t / "edited"
    shutil.copytree(run_dir, edited)
    cfg = yaml.safe_load((edited / "config.yaml").read_text())
    (edited / "config.yaml").write_text(yaml.safe_dump({**cfg, "seed": 9}))
    nock = t / "nock"
    shutil.copytree(run_dir, nock)
    shutil.rmtree(nock / "checkpoints")
    src_cfg = stager_config()
    src_cfg.pop("stages")
    run(src_cfg, run_dir=t / "src", progress=False, max_chunks=1)
    (t / "file").write_text("x")
    (t / "other").mkdir()
    (t / "other" / "a.txt").write_text("x")
    (t / "sf").mkdir()
    (t / "sf" / "config.yaml").write_text(
        "agent: r2d2\nenv: {name: simfish}\nnetwork: {name: r2d2_simfish}\ntotal_env_steps: 10\n"
    )
    texts = {"notyaml": "a: [b\n", "list": "- a\n- b\n", "typo": "agnet: ppo\n",
             "envint": "env: 5\n", "agentcfg": "agent_config: [1, 2]\n",
             "frac": "total_env_steps: 2.5\n"}  # fmt: skip
    for name, text in texts.items():
        (t / f"{name}.yaml").write_text(text)
    dummy = dummy_config()
    files = {
        "dummy": dummy,
        "wide": {**src_cfg, "agent_config": {"width": 4}},
        "st_unknown": {**dummy, "stages": [{"name": "a", "max_env_steps": 64, "speed": 3}, {}]},
        "st_missing": {**dummy, "stages": [{"name": "a"}, {"name": "b"}]},
        "st_metric": {**dummy, "stages": [
            {"name": "a", "max_env_steps": 64, "advance": {"metric": "prey_eaten", "threshold": 1}},
            {"name": "b"}]},
        "st_notlist": {**dummy, "stages": {"a": 1}},
        "st_env": {**dummy, "stages": [{"name": "a", "env": {"name": "simfish"}}]},
    }  # fmt: skip
    for name, cfg in files.items():
        (t / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return {
        "T": str(t), "RUN": str(run_dir), "EDITED": str(edited), "NOCK": str(nock),
        "SF": str(t / "sf"), "SRC": str(t / "src"), "FILE": str(t / "file"),
        "OTHER": str(t / "other"), "TOO_MANY": str(CORES + 1),
    }  # fmt: skip


def run_cli(argv: list[str], capfd) -> tuple[int, list[str]]:
    """``larvax ARGV`` in this process: (exit code, stderr lines)."""
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]


@pytest.mark.parametrize(
    "argv, code, message", [c[1:4] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_bad_command_line_input(places, capfd, monkeypatch, tmp_path, argv, code, message):
    if "/sys/" in argv and not SYS_PATHS:
        pytest.skip("no /sys on this machine")
    monkeypatch.chdir(tmp_path)  # a default run directory (runs/NAME-TIME) lands there
    got_code, err = run_cli(argv.format(**places).split(), capfd)
    assert got_code == code, err
    assert err, "no message on stderr"
    assert re.search(message, err[-1]), err[-1]
    assert not any("Traceback" in ln for ln in err)
    errors = [ln for ln in err if re.match(r"^larvax( \w+)?: error: ", ln)]
    assert errors == [err[-1]]  # one error line, the last one


def test_whole_numbers_in_exponent_form_are_ints(tmp_path):
    """YAML 1.1 reads ``1e6`` as a string and ``1.0e+6`` as a float: both are the int they
    write; a fractional budget stays an error (above)."""
    from larvax.training.config import resolve

    for text in ("1e6", "1.0e+6", "1000000"):
        (tmp_path / "c.yaml").write_text(f"total_env_steps: {text}\nseed: 2e0\n")
        cfg = resolve(config_file=tmp_path / "c.yaml")
        assert cfg["total_env_steps"] == 1_000_000 and type(cfg["total_env_steps"]) is int
        assert cfg["seed"] == 2 and type(cfg["seed"]) is int


# ----------------------------------------------------------------------------- API


def _simfish_params(**kwargs):
    from larvax.envs.simfish.config import SimfishParams

    return SimfishParams(**kwargs)


def _make(*args, **kwargs):
    from larvax.envs import make

    return make(*args, **kwargs)


def _step_out_of_range():
    import jax

    env, params = _make("RepeatFirstEasy")
    state, _ = env.reset(jax.random.key(0), params)
    return env.step(jax.random.key(1), state, 9, params)


def _gymnasium(action, reset=True):
    from larvax.envs import to_gymnasium

    env, params = _make("RepeatFirstEasy")
    genv = to_gymnasium(env, params, seed=0)
    if reset:
        genv.reset()
    return genv.step(action)


def _r2d2(**kwargs):
    from larvax.agents.r2d2.config import R2D2Config

    return R2D2Config(**kwargs)


def _ppo(**kwargs):
    from larvax.agents.ppo.config import PPOConfig

    return PPOConfig(**kwargs)


def _create(*args, **kwargs):
    from larvax.networks.registry import create

    return create(*args, **kwargs)


def _load_model(kind, tmp_path):
    from larvax.networks.serialization import load_model, save_model

    d = tmp_path / "model"
    if kind == "partial":  # killed between metadata.json and the parameter state
        save_model(_create("recurrent_q", obs_dim=3, num_actions=2, torso="mlp"), d)
        shutil.rmtree(d / "state")
    elif kind == "empty":
        d.mkdir()
    return load_model(d)


def _make_agent(agent, network, config):
    from larvax.agents.base import make_agent

    env, params = _make("RepeatFirstEasy")
    return make_agent(agent, env, params, network, config)


def _evaluate(**kwargs):
    from larvax.evaluation.loop import evaluate

    env, params = _make("RepeatFirstEasy")
    args = {"episodes": 1, "epsilon": 0.0, **kwargs}
    return next(iter(evaluate(None, None, env, params, args.pop("episodes"),
                              args.pop("epsilon"), **args)))  # fmt: skip


def _stages(raw):
    from larvax.training.curriculum import parse_stages

    return parse_stages({"env": {"name": "simfish"}, "stages": raw})


def _resolve(**kwargs):
    from larvax.training.config import resolve

    return resolve(**kwargs)


def _run(cfg, tmp_path):
    from larvax.training.loop import run

    return run(cfg, run_dir=tmp_path / "run", progress=False)


def _pretrained(name):
    from larvax import pretrained

    return pretrained.load(name)


def _mirror():
    from larvax.envs.wrappers import Mirror

    return Mirror(_make("RepeatFirstEasy")[0])


SAC = {"name": "shared_actor_critic"}
# (test id, call as written in the table, the call, exception class name, message regex)
API_CASES = [
    ("simfish-params-negative", "SimfishParams(prey_num=-1)", lambda t: _simfish_params(prey_num=-1),
     "ConfigValueError", r"^SimfishParams.prey_num=-1 is not allowed; allowed: an int >= 0$"),
    ("simfish-params-float-for-int", "SimfishParams(prey_num=2.5)",
     lambda t: _simfish_params(prey_num=2.5),
     "ConfigValueError", r"^SimfishParams.prey_num=2.5 is not allowed; allowed: an int >= 0$"),
    ("simfish-params-bool-for-int", "SimfishParams(max_steps=True)",
     lambda t: _simfish_params(max_steps=True),
     "ConfigValueError", r"^SimfishParams.max_steps=True is not allowed; allowed: an int >= 1$"),
    ("simfish-params-inf", "SimfishParams(fish_mass=math.inf)",
     lambda t: _simfish_params(fish_mass=math.inf), "ConfigValueError",
     r"^SimfishParams.fish_mass=inf is not allowed; allowed: a finite number > 0.0$"),
    ("simfish-params-nan", "SimfishParams(fish_mass=math.nan)",
     lambda t: _simfish_params(fish_mass=math.nan), "ConfigValueError",
     r"^SimfishParams.fish_mass=nan is not allowed; allowed: a finite number > 0.0$"),
    ("simfish-params-string-for-number", "SimfishParams(dark_fraction='0.3')",
     lambda t: _simfish_params(dark_fraction="0.3"), "ConfigValueError",
     r"^SimfishParams.dark_fraction='0.3' is not allowed; allowed: a finite number >= 0.0 and "
     r"<= 1.0$"),
    ("simfish-params-replace", "SimfishParams().replace(prey_num=-1)",
     lambda t: _simfish_params().replace(prey_num=-1),
     "ConfigValueError", r"^SimfishParams.prey_num=-1 is not allowed; allowed: an int >= 0$"),
    ("simfish-params-unknown-field", "SimfishParams(prey_nmu=3)",
     lambda t: _simfish_params(prey_nmu=3),
     "TypeError", r"^SimfishParams.__init__\(\) got an unexpected keyword argument 'prey_nmu'$"),
    ("make-unknown-env", "make('nosuch')", lambda t: _make("nosuch"),
     "ValueError", r"^unknown environment 'nosuch'; allowed: AutoencodeEasy, .*gymnax:<name>$"),
    ("make-name-not-a-string", "make(5)", lambda t: _make(5),
     "ValueError", r"^make: name=5 is not allowed; allowed: a registered name \(str\)$"),
    ("make-simfish-unknown-field", "make('simfish', prey_nmu=3)",
     lambda t: _make("simfish", prey_nmu=3), "ConfigValueError",
     r"^SimfishParams has no field 'prey_nmu' \(value 3\); allowed: \['arena_height'"),
    ("make-simfish-unknown-preset", "make('simfish', preset='nosuch')",
     lambda t: _make("simfish", preset="nosuch"), "ConfigValueError",
     r"^Simfish.preset='nosuch' is not allowed; allowed: 'normal', 'sparse', 'empty', 'stage1'$"),
    ("make-memory-unknown-argument", "make('RepeatFirstEasy', foo=1)",
     lambda t: _make("RepeatFirstEasy", foo=1), "ValueError",
     r"^RepeatFirstEasy: unknown argument 'foo' \(value 1\); allowed: num_decks$"),
    ("step-action-out-of-range", "env.step(key, state, 9, params) on RepeatFirstEasy (eager)",
     lambda t: _step_out_of_range(), "InvalidActionError",
     r"^RepeatFirstEasy.step: action 9 is outside the action space; allowed: Discrete\(4\): an "
     r"integer 0..3$"),
    ("gymnasium-action-out-of-range", "to_gymnasium(RepeatFirstEasy).step(7)",
     lambda t: _gymnasium(7), "InvalidActionError",
     r"^LarvaxGymnasiumEnv\(RepeatFirstEasy\).step: action 7 is outside the action space; "
     r"allowed: Discrete\(4\): an integer 0..3$"),
    ("gymnasium-step-before-reset", "to_gymnasium(...).step(0) before reset()",
     lambda t: _gymnasium(0, reset=False), "RuntimeError", r"^call reset\(\) before step\(\)$"),
    ("mirror-without-mirror-table", "Mirror(RepeatFirstEasy)", lambda t: _mirror(),
     "ValueError", r"^Mirror needs an environment declaring mirror_actions and "
     r"reflect_observation; RepeatFirstEasy has mirror_actions=None$"),
    ("r2d2-config-zero-batch", "R2D2Config(batch_size=0)", lambda t: _r2d2(batch_size=0),
     "ConfigValueError", r"^R2D2Config.batch_size=0 is not allowed; allowed: an int >= 1$"),
    ("r2d2-config-string-batch", "R2D2Config(batch_size='32')", lambda t: _r2d2(batch_size="32"),
     "ConfigValueError", r"^R2D2Config.batch_size='32' is not allowed; allowed: an int >= 1$"),
    ("r2d2-config-negative-lr", "R2D2Config(learning_rate=-1.0)",
     lambda t: _r2d2(learning_rate=-1.0), "ConfigValueError",
     r"^R2D2Config.learning_rate=-1.0 is not allowed; allowed: a finite number > 0.0$"),
    ("r2d2-config-discount-above-one", "R2D2Config(discount=1.5)", lambda t: _r2d2(discount=1.5),
     "ConfigValueError",
     r"^R2D2Config.discount=1.5 is not allowed; allowed: a finite number >= 0.0 and <= 1.0$"),
    ("r2d2-config-capacity-vs-envs", "R2D2Config(replay_capacity=10)",
     lambda t: _r2d2(replay_capacity=10), "ConfigValueError",
     r"^R2D2Config.replay_capacity=10 is not allowed; allowed: a multiple of num_envs=64$"),
    ("r2d2-config-epsilons", "R2D2Config(epsilon_min=0.5, epsilon_max=0.1)",
     lambda t: _r2d2(epsilon_min=0.5, epsilon_max=0.1), "ConfigValueError",
     r"^R2D2Config.epsilon_min=0.5 is not allowed; allowed: a number <= epsilon_max=0.1$"),
    ("r2d2-config-zero-devices", "R2D2Config(num_devices=0)", lambda t: _r2d2(num_devices=0),
     "ConfigValueError",
     r"^R2D2Config.num_devices=0 is not allowed; allowed: 'auto' or an int >= 1$"),
    ("r2d2-config-mirror-string", "R2D2Config(mirror='yes')", lambda t: _r2d2(mirror="yes"),
     "ConfigValueError",
     r"^R2D2Config.mirror='yes' is not allowed; allowed: 'auto', True, False$"),
    ("ppo-config-minibatches", "PPOConfig(num_envs=16, num_minibatches=3)",
     lambda t: _ppo(num_envs=16, num_minibatches=3), "ConfigValueError",
     r"^PPOConfig.num_minibatches=3 is not allowed; allowed: a divisor of num_envs=16"),
    ("ppo-config-negative-clip", "PPOConfig(clip_eps=-0.1)", lambda t: _ppo(clip_eps=-0.1),
     "ConfigValueError",
     r"^PPOConfig.clip_eps=-0.1 is not allowed; allowed: a finite number > 0.0$"),
    ("ppo-config-lambda-above-one", "PPOConfig(gae_lambda=2.0)", lambda t: _ppo(gae_lambda=2.0),
     "ConfigValueError",
     r"^PPOConfig.gae_lambda=2.0 is not allowed; allowed: a finite number >= 0.0 and <= 1.0$"),
    ("ppo-config-unknown-field", "PPOConfig(nosuch=1)", lambda t: _ppo(nosuch=1),
     "TypeError", r"^PPOConfig.__init__\(\) got an unexpected keyword argument 'nosuch'$"),
    ("create-unknown-network", "registry.create('nosuch')", lambda t: _create("nosuch"),
     "ValueError", r"^unknown model 'nosuch'; allowed: actor_critic, .*shared_actor_critic$"),
    ("create-unknown-argument", "create('recurrent_q', obs_dim=3, num_actions=2, nosuch=1)",
     lambda t: _create("recurrent_q", obs_dim=3, num_actions=2, nosuch=1), "ValueError",
     r"^recurrent_q \(RecurrentQNetwork\): bad arguments: got an unexpected keyword argument "
     r"'nosuch'$"),
    ("create-missing-argument", "create('recurrent_q')", lambda t: _create("recurrent_q"),
     "ValueError", r"^recurrent_q \(RecurrentQNetwork\): bad arguments: missing a required "
     r"argument: 'num_actions'$"),
    ("create-unknown-torso", "create('recurrent_q', ..., torso='transformer')",
     lambda t: _create("recurrent_q", obs_dim=3, num_actions=2, torso="transformer"),
     "ValueError", r"^torso='transformer' is unknown; allowed: lstm, gru, .*, mlp$"),
    ("create-zero-actions", "create('recurrent_q', obs_dim=3, num_actions=0)",
     lambda t: _create("recurrent_q", obs_dim=3, num_actions=0),
     "ValueError", r"^num_actions must be a positive integer, got 0$"),
    ("create-negative-obs-dim", "create('recurrent_q', obs_dim=-3, num_actions=2)",
     lambda t: _create("recurrent_q", obs_dim=-3, num_actions=2),
     "ValueError", r"^obs_dim must be a positive integer, got -3$"),
    ("create-seed-not-int", "create('recurrent_q', ..., seed='a')",
     lambda t: _create("recurrent_q", obs_dim=3, num_actions=2, seed="a"),
     "ValueError", r"^create: seed must be an int, got 'a'$"),
    ("load-model-missing", "load_model('missing/')", lambda t: _load_model("missing", t),
     "FileNotFoundError", r"^model directory .*/model does not exist$"),
    ("load-model-empty", "load_model(an empty folder)", lambda t: _load_model("empty", t),
     "ValueError", r"^.*/model is not a complete larvax model: metadata.json is missing \(an "
     r"interrupted save, or not a model directory\)$"),
    ("load-model-partial", "load_model(a model folder without state/)",
     lambda t: _load_model("partial", t), "ValueError",
     r"^.*/model is a partial checkpoint: the parameter state .*/model/state is missing$"),
    ("make-agent-network-misfit", "make_agent('ppo', RepeatFirstEasy, num_actions=5)",
     lambda t: _make_agent("ppo", {**SAC, "num_actions": 5}, {"num_envs": 4}), "ValueError",
     r"^network.num_actions=5 does not match the environment: its action space has 4 actions; "
     r"remove network.num_actions \(it is filled from the environment\) or set it to 4$"),
    ("make-agent-unknown-agent", "make_agent('sac', ...)", lambda t: _make_agent("sac", SAC, {}),
     "ValueError", r"^agent: unknown agent 'sac'; allowed: .*ppo, r2d2"),
    ("make-agent-unknown-config-field", "make_agent('ppo', ..., config={'num_envz': 4})",
     lambda t: _make_agent("ppo", SAC, {"num_envz": 4}), "ConfigValueError",
     r"^PPOConfig: unknown field\(s\) \['num_envz'\]; allowed: num_envs, "),
    ("make-agent-unknown-network", "make_agent('ppo', ..., network={'name': 'nosuch'})",
     lambda t: _make_agent("ppo", {"name": "nosuch"}, {}), "ValueError",
     r"^unknown model 'nosuch'; allowed: "),
    ("make-agent-bad-network-argument", "make_agent('ppo', ..., network={..., 'hiddn': [4]})",
     lambda t: _make_agent("ppo", {**SAC, "hiddn": [4]}, {}), "ValueError",
     r"^shared_actor_critic \(SharedActorCritic\): bad arguments: got an unexpected keyword "
     r"argument 'hiddn'$"),
    ("evaluate-zero-episodes", "evaluate(..., episodes=0)", lambda t: _evaluate(episodes=0),
     "ValueError", r"^evaluate: episodes=0 is not allowed; allowed: an int >= 1$"),
    ("evaluate-fractional-episodes", "evaluate(..., episodes=2.5)",
     lambda t: _evaluate(episodes=2.5),
     "ValueError", r"^evaluate: episodes=2.5 is not allowed; allowed: an int >= 1$"),
    ("evaluate-epsilon-above-one", "evaluate(..., epsilon=2.0)", lambda t: _evaluate(epsilon=2.0),
     "ValueError", r"^evaluate: epsilon=2.0 is not allowed; allowed: a number from 0 to 1$"),
    ("evaluate-zero-batch", "evaluate(..., batch=0)", lambda t: _evaluate(batch=0),
     "ValueError", r"^evaluate: batch=0 is not allowed; allowed: an int >= 1$"),
    ("pretrained-unknown", "pretrained.load('nosuch')", lambda t: _pretrained("nosuch"),
     "PretrainedError", r"^pretrained model 'nosuch' is not allowed; allowed: "),
    ("stages-unknown-key", "parse_stages: a stage with speed=1",
     lambda t: _stages([{"name": "a", "max_env_steps": 5, "speed": 1}, {}]), "CurriculumError",
     r"^stages\[0\].speed=1 is not allowed; allowed: keys name, env, agent_config, "),
    ("stages-missing-budget", "parse_stages: first of two stages without max_env_steps",
     lambda t: _stages([{"name": "a"}, {"name": "b"}]), "CurriculumError",
     r"^stages\[0\].max_env_steps=None is not allowed; allowed: an int >= 1 \(every stage but "
     r"the last\)$"),
    ("stages-advance-without-metric", "parse_stages: advance={'threshold': 1}",
     lambda t: _stages([{"name": "a", "max_env_steps": 5, "advance": {"threshold": 1}}, {}]),
     "CurriculumError", r"^stages\[0\].advance.metric=None is not allowed; allowed: the name of "
     r"an episode column \(e.g. prey_caught\)$"),
    ("stages-duplicate-name", "parse_stages: two stages named 'a'",
     lambda t: _stages([{"name": "a", "max_env_steps": 5}, {"name": "a"}]), "CurriculumError",
     r"^stages\[1\].name='a' is not allowed; allowed: a non-empty name not used by another "
     r"stage$"),
    ("stages-empty", "parse_stages: stages=[]", lambda t: _stages([]), "CurriculumError",
     r"^stages=\[\] is not allowed; allowed: a non-empty list of stage mappings$"),
    ("resolve-unknown-preset", "config.resolve(preset='nosuch')",
     lambda t: _resolve(preset="nosuch"), "ConfigError", r"^unknown preset 'nosuch'; allowed: "),
    ("resolve-bad-override", "resolve(overrides=['agent_config.batch_size=x'])",
     lambda t: _resolve(overrides=["agent_config.batch_size=x"]), "ConfigError",
     r"^agent_config.batch_size: expected an int, got 'x'$"),
    ("run-without-config", "training.loop.run(None, run_dir=NEW)", lambda t: _run(None, t),
     "ConfigError", r"^no config given$"),
    ("run-empty-config", "training.loop.run({}, run_dir=NEW)", lambda t: _run({}, t),
     "ConfigError", r"^config is missing the required key 'agent'$"),
]  # fmt: skip


@pytest.mark.parametrize(
    "call, error, message", [c[2:5] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_bad_api_call(tmp_path, call, error, message):
    with pytest.raises(Exception) as err:
        call(tmp_path)
    assert type(err.value).__name__ == error, repr(err.value)
    text = str(err.value)
    assert "\n" not in text
    assert re.search(message, text), text
