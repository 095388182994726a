"""Sim-to-real figures: how much success a policy trained in simulation keeps on a stand-in for a real
robot (`sim/standins/`, served behind ROS 2 like hardware), and how many stand-in steps fine-tuning
needs compared with training there from scratch.

    python benchmarks/sim2real.py [--quick] [--out FILE.json] [--tasks pick peg] [--plot FILE.png]
                                  [--pixels | --recipes NAME ...] [--finetune-steps N] [--scratch-steps N]
                                  [--work-dir DIR]

Per task, all training through `robot-rl train` in its own process, all stand-in work through ROS 2
against `robot-rl sim-robot --standin` nodes (lockstep), evaluations on a second stand-in node. Each
recipe runs its shipped config (configs/sim2real/pick_cube_<recipe>.yaml; peg takes pick's with its own
task and demos); the benchmark sets only the evaluations, seed and robots, and the budgets of --quick:
- sim_nominal / sim_dr: trained in the nominal sim (10k steps), and with domain randomisation (recipe a,
  pick_cube_dr.yaml); success in the sim and zero-shot on the stand-in;
- finetune: the DR policy fine-tuned on the stand-in (recipe c, after WSRL: the sim actor, no offline
  data, fresh critics warmed up before the actor moves, a constant anchor to the sim actor), success on
  the stand-in along the way (--finetune-steps N: another budget for every fine-tuning recipe; a finished
  shorter run is continued);
- scratch: SAC/RLPD on the stand-in from scratch with the same step budget (and the same 10 sim demos),
  or --scratch-steps N when scratch needs longer to reach 90% (a finished shorter run is continued);
- hybrid: as scratch, with a randomised simulator beside the stand-in whose transitions fill half of
  each critic batch, weighted by the learned dynamics-gap ratio (recipe d, H2O).
- with --pixels: an asymmetric actor-critic from pixels (recipe b) and a pixel student distilled from
  the DR state policy (recipe e), both with visual randomisation; success in the sim and zero-shot on
  the stand-in; and asymmetric_finetune / distill_finetune, the asymmetric policy / the student
  fine-tuned on the stand-in from its cameras, fresh critics reading the stand-in's object tracker (as a
  robot's would, during training).
Reported: success at each evaluation, steps to 90%, and the fine-tune/scratch step ratio (the target
is <= 25%). With --plot, a PNG of the curves.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import report

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "sim2real"
TASKS = {"pick": ("PickCube-v0", "pick_cube", 10), "peg": ("PegInsertion-v0", "peg_insertion", 20)}
# Each recipe's settings are the config a user runs (configs/sim2real/<standin>_<recipe>.yaml; a task
# without its own takes pick-cube's with its task and demo count), so what is measured is what ships. The
# benchmark adds only how it measures (evaluations, seeds, the ROS 2 robots) and, with --quick, budgets.
RECIPE_CONFIGS = {"sim_dr": "dr", "finetune": "finetune", "asymmetric": "asymmetric",
                  "asymmetric_finetune": "asymmetric_finetune", "distill": "distill",
                  "distill_finetune": "distill_finetune"}


def recipe(name: str, recipe_name: str) -> dict:
    """The shipped config of `recipe_name` for task `name`, as plain values."""
    from robot_rl.config import load_yaml

    task, standin, demos = TASKS[name]
    own = CONFIGS / f"{standin}_{RECIPE_CONFIGS[recipe_name]}.yaml"
    if own.exists():
        return load_yaml(own)
    values = load_yaml(CONFIGS / f"pick_cube_{RECIPE_CONFIGS[recipe_name]}.yaml")
    # The task's own demo count, except in recipes that record none (fine-tuning, distillation).
    return {**values, "env": {"id": task}, "num_demos": demos if values.get("num_demos", 10) else 0}


TRAIN = ("import json, sys; from robot_rl.train import TrainConfig, Trainer; "
         "Trainer(TrainConfig.from_dict(json.load(open(sys.argv[1]))), resume=sys.argv[2] == 'resume').run()")


class StandIn:
    """`robot-rl sim-robot --standin NAME --lockstep` in its own process group, stopped on exit."""

    def __init__(self, name: str, namespace: str, domain: int, cameras: tuple[str, ...] = (), image_size: int = 128):
        self.process = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "sim-robot", "--standin", name,
                                         "--lockstep", "--cameras", *cameras, "--image-size", str(image_size),
                                         "--namespace", namespace, "--domain-id", str(domain)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                        cwd=ROOT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def _training(settings: dict) -> dict:
    """What makes two runs the same run: every setting but the ROS 2 domain, which each benchmark call
    picks afresh (--domain-id defaults to one from its process id)."""
    robot = {k: v for k, v in settings.get("robot", {}).items() if k != "domain_id"}
    return {**settings, "robot": robot}


def _train(out: Path, settings: dict) -> list[dict]:
    """Train in a process of its own. In --work-dir, a finished run with the same settings is reused, and
    a finished run that differs only in a smaller `total_env_steps` is continued to the new budget."""
    settings = {**settings, "tensorboard": False, "progress": False}
    config = out.with_suffix(".json")
    evals = out / "eval.jsonl"
    extend = False
    if config.exists() and evals.exists() and (out / "checkpoint.pt").exists():
        before = json.loads(config.read_text())
        done = [json.loads(line) for line in evals.read_text().splitlines()]
        finished = bool(done) and done[-1]["env_step"] >= before["total_env_steps"]
        if finished and _training(before) == _training(settings):
            return done
        extend = finished and _training({**before, "total_env_steps": settings["total_env_steps"]}) == \
            _training(settings) and before["total_env_steps"] < settings["total_env_steps"]
    if not extend:
        shutil.rmtree(out, ignore_errors=True)  # an unfinished or different run: start over
    config.write_text(json.dumps(settings))
    run = subprocess.run([sys.executable, "-c", TRAIN, str(config), "resume" if extend else "new"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"training {out.name} failed:\n{run.stderr[-3000:]}")
    return [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]


def _zero_shot(run: Path, standin: str, episodes: int, domain: int, pixels: int | None = None) -> float:
    from robot_rl.train import evaluate_checkpoint

    cameras = ("front", "wrist") if pixels else ()
    with StandIn(standin, "robot", domain, cameras, pixels or 128):
        result = evaluate_checkpoint(run, {"robot": {"enabled": True, "domain_id": domain}}, episodes)
    return result["success_rate"]


def _progress(results: dict, prefix: str) -> None:
    """One line per finished recipe on stderr, so a long run shows its figures as they come."""
    print(", ".join(f"{k}={v}" for k, v in results.items() if k.startswith(prefix)), file=sys.stderr, flush=True)


def _steps_to(evals: list[dict], level: float) -> int | None:
    return next((e["env_step"] for e in evals if e["success_rate"] >= level), None)


STATE_RECIPES = ("sim_nominal", "sim_dr", "finetune", "scratch", "hybrid")
PIXEL_RECIPES = ("asymmetric", "distill", "asymmetric_finetune", "distill_finetune")


FINETUNE_RECIPES = ("finetune", "asymmetric_finetune", "distill_finetune")


def recipe_settings(name: str, root: Path, quick: bool, domain: int, seed: int = 0,
                    scratch_steps: int | None = None, finetune_steps: int | None = None) -> dict[str, dict]:
    """Every recipe's training settings for task `name`, runs under `root`: the shipped configs plus how the
    benchmark measures; the baselines (nominal sim, scratch, hybrid) from the task's defaults, scratch and
    hybrid with fine-tuning's budget unless `scratch_steps` says otherwise; `finetune_steps` replaces the
    fine-tuning recipes' budget."""
    from robot_rl.config import merge

    task, _, demos = TASKS[name]
    eval_every, episodes = (100, 2) if quick else (1_000, 20)
    measure = {"eval_every": eval_every, "eval_episodes": episodes, "seed": seed}
    robot = {"robot": {"enabled": True, "lockstep": True, "domain_id": domain, "eval_namespace": "eval"}}

    def configured(recipe_name: str, quick_steps: int, **fixed) -> dict:
        values = merge(recipe(name, recipe_name), {**measure, **fixed})
        if quick:  # the pipeline, not the numbers: tiny budgets and batches, warm-ups that fit in them
            values = merge(values, {"total_env_steps": quick_steps, "agent": {"batch_size": 32, "utd": 1}})
            for key in ("learning_starts", "critic_warmup_steps"):
                if key in values:
                    values[key] = min(values[key], quick_steps // 3)
            if values["agent"].get("name") == "distill":
                values["agent"]["handover_steps"] = quick_steps // 4
        return {**values, "out_dir": str(root / f"{name}_{recipe_name}")}

    sim_dr = root / f"{name}_sim_dr"
    settings = {
        "sim_dr": configured("sim_dr", 400),
        "finetune": configured("finetune", 300, **robot, warm_start=str(sim_dr / "checkpoint.pt")),
        "asymmetric": configured("asymmetric", 200),
        "distill": configured("distill", 200, agent={"teacher": str(sim_dr)}),
        "asymmetric_finetune": configured("asymmetric_finetune", 300, **robot,
                                          warm_start=str(root / f"{name}_asymmetric" / "checkpoint.pt")),
        "distill_finetune": configured("distill_finetune", 300, **robot,
                                       warm_start=str(root / f"{name}_distill" / "checkpoint.pt")),
    }
    if finetune_steps:
        for recipe_name in FINETUNE_RECIPES:
            settings[recipe_name]["total_env_steps"] = finetune_steps
    # The baselines: the nominal sim (10k steps), and the robot from scratch with the fine-tuning budget
    # and the DR policy's observation (and a randomised sim beside it, for hybrid).
    baseline = {"env": {"id": task}, "num_demos": demos, "action_history": settings["sim_dr"].get("action_history", 0),
                **measure, **({"agent": {"batch_size": 32, "utd": 1}} if quick else {})}
    budget = scratch_steps or settings["finetune"]["total_env_steps"]
    settings["sim_nominal"] = {**baseline, "action_history": 0, "total_env_steps": 400 if quick else 10_000}
    settings["scratch"] = {**baseline, **robot, "total_env_steps": budget}
    settings["hybrid"] = {**settings["scratch"], "hybrid": {"enabled": True},
                          "randomization": settings["sim_dr"]["randomization"]}
    for recipe_name in ("sim_nominal", "scratch", "hybrid"):
        settings[recipe_name]["out_dir"] = str(root / f"{name}_{recipe_name}")
    return settings


def run_task(name: str, root: Path, quick: bool, domain: int, recipes: tuple[str, ...] = STATE_RECIPES,
             seed: int = 0, scratch_steps: int | None = None, finetune_steps: int | None = None) -> dict:
    """Run `recipes` for task `name` under `root`. finetune and distill's teacher start from the sim_dr run,
    asymmetric_finetune from the asymmetric run, distill_finetune from the distill run: a run not among
    `recipes` must already be in `root`."""
    standin = TASKS[name][1]
    episodes = 2 if quick else 20
    for needed, users in (("sim_dr", {"finetune", "distill"}), ("asymmetric", {"asymmetric_finetune"}),
                          ("distill", {"distill_finetune"})):
        run = root / f"{name}_{needed}"
        if needed not in recipes and users & set(recipes) and not (run / "checkpoint.pt").exists():
            raise SystemExit(f"{' and '.join(sorted(users))} start from the {needed} run: add {needed} to --recipes, "
                             f"or pass the --work-dir of a run that has {run.name}")
    settings = recipe_settings(name, root, quick, domain, seed, scratch_steps, finetune_steps)
    results: dict[str, object] = {}
    curves: dict[str, list] = {}
    started = time.time()

    def record(prefix: str, evals: list[dict]) -> None:  # a stand-in training curve's figures
        for level in (2_000, 5_000, 10_000):
            at = [e["success_rate"] for e in evals if e["env_step"] == level]
            if at:
                results[f"{prefix}_standin_success_at_{level}_steps"] = at[0]
        results[f"{prefix}_standin_final_success"] = evals[-1]["success_rate"]
        results[f"{prefix}_standin_steps_to_90pct"] = _steps_to(evals, 0.9)
        _progress(results, f"{prefix}_")
    for recipe_name in ("sim_nominal", "sim_dr"):
        if recipe_name not in recipes:
            continue
        out = Path(settings[recipe_name]["out_dir"])
        evals = _train(out, settings[recipe_name])
        results[f"{name}_{recipe_name}_sim_success"] = evals[-1]["success_rate"]
        results[f"{name}_{recipe_name}_standin_zero_shot_success"] = _zero_shot(out, standin, episodes, domain)
        _progress(results, f"{name}_{recipe_name}_")
    for recipe_name in ("finetune", "scratch", "hybrid"):
        if recipe_name not in recipes:
            continue
        out = Path(settings[recipe_name]["out_dir"])
        with StandIn(standin, "robot", domain), StandIn(standin, "eval", domain):
            evals = _train(out, settings[recipe_name])
        curves[recipe_name] = [(e["env_step"], e["success_rate"]) for e in evals]
        record(f"{name}_{recipe_name}", evals)
    # Recipes (b) and (e): policies that see only cameras + proprio, zero-shot on the stand-in.
    for recipe_name in ("asymmetric", "distill"):
        if recipe_name not in recipes:
            continue
        out = Path(settings[recipe_name]["out_dir"])
        evals = _train(out, settings[recipe_name])
        results[f"{name}_{recipe_name}_pixels_sim_success"] = evals[-1]["success_rate"]
        results[f"{name}_{recipe_name}_pixels_standin_zero_shot_success"] = _zero_shot(
            out, standin, episodes, domain, pixels=settings[recipe_name]["image_size"])
        _progress(results, f"{name}_{recipe_name}_")
    # (b) or (e), then (c): the actor acts from the stand-in's cameras, the critics learn from its object tracker.
    for recipe_name in ("asymmetric_finetune", "distill_finetune"):
        if recipe_name not in recipes:
            continue
        pixel_finetune = settings[recipe_name]
        out = Path(pixel_finetune["out_dir"])
        cameras, size = tuple(pixel_finetune["cameras"]), pixel_finetune["image_size"]
        with StandIn(standin, "robot", domain, cameras, size), StandIn(standin, "eval", domain, cameras, size):
            evals = _train(out, pixel_finetune)
        curves[recipe_name] = [(e["env_step"], e["success_rate"]) for e in evals]
        record(f"{name}_{recipe_name}", evals)
    scratch_steps = results.get(f"{name}_scratch_standin_steps_to_90pct")
    for recipe_name in ("finetune", "distill_finetune"):  # against scratch from state, the quicker baseline
        fine = results.get(f"{name}_{recipe_name}_standin_steps_to_90pct")
        if fine is not None and scratch_steps is not None:
            results[f"{name}_{recipe_name}_over_scratch_steps_ratio"] = fine / scratch_steps
    results[f"{name}_wall_s"] = time.time() - started
    if curves:
        results[f"{name}_curves"] = curves
    return results


def plot(results: dict, path: str) -> bool:
    """A PNG of the stand-in training curves, one panel a task; False when no recipe run trained on it."""
    names = [k[:-len("_curves")] for k in results if k.endswith("_curves")]
    if not names:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        for recipe, points in results[f"{name}_curves"].items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=recipe)
        zero_shot = {"sim_nominal": ("sim_nominal", "gray"), "sim_dr": ("sim_dr", "black"),
                     "distill_pixels": ("distill", "tab:brown")}
        for key, (label, color) in zero_shot.items():
            if f"{name}_{key}_standin_zero_shot_success" in results:
                ax.axhline(results[f"{name}_{key}_standin_zero_shot_success"], ls="--", lw=1, color=color,
                           label=f"{label} zero-shot")
        ax.set(title=f"{name}: success on the stand-in", xlabel="stand-in env steps", ylim=(-0.05, 1.05))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def _positive_int(text: str) -> int:
    """argparse type: refuse a budget of zero or less before any training starts."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of stand-in steps, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the pipeline, not the numbers")
    parser.add_argument("--out", default=None)
    parser.add_argument("--tasks", nargs="+", default=["pick", "peg"], choices=sorted(TASKS))
    parser.add_argument("--plot", default=None, metavar="FILE.png")
    parser.add_argument("--domain-id", type=int, default=120 + os.getpid() % 60)
    parser.add_argument("--seed", type=int, default=0, help="of every training run (evaluation seeds are fixed)")
    parser.add_argument("--pixels", action="store_true", help="also recipes (b) asymmetric actor-critic and (e) "
                                                              "distillation from pixels, and fine-tuning each on the stand-in "
                                                              "(~3 h more per task)")
    parser.add_argument("--recipes", nargs="+", choices=STATE_RECIPES + PIXEL_RECIPES, default=None,
                        help="run only these (default: the state recipes, plus the pixel ones with --pixels)")
    parser.add_argument("--finetune-steps", type=_positive_int, default=None, metavar="N",
                        help="stand-in steps for each fine-tuning recipe (default: its config's); a shorter budget "
                             "measures steps to 90%% sooner, and a later, longer one continues the run")
    parser.add_argument("--scratch-steps", type=_positive_int, default=None, metavar="N",
                        help="stand-in steps for training from scratch (and hybrid), when fine-tuning's budget "
                             "is too short for it to reach 90%% (default: fine-tuning's budget)")
    parser.add_argument("--work-dir", default=None, help="keep the runs here (default: a temporary directory); "
                                                         "finished runs there are reused, not redone")
    args = parser.parse_args()
    # `kill` (SIGTERM) unwinds like Ctrl-C: the stand-in nodes and the training process stop with us.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    recipes = tuple(args.recipes or STATE_RECIPES + (PIXEL_RECIPES if args.pixels else ()))
    results: dict[str, object] = {"quick": args.quick, "recipes": list(recipes), "seed": args.seed,
                                  "scratch_steps": args.scratch_steps, "finetune_steps": args.finetune_steps}
    with tempfile.TemporaryDirectory(prefix="sim2real_") as tmp:
        root = Path(args.work_dir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        for name in args.tasks:
            results.update(run_task(name, root, args.quick, args.domain_id, recipes, args.seed,
                                    args.scratch_steps, args.finetune_steps))
    if args.plot and plot(results, args.plot):
        results["plot"] = args.plot
    elif args.plot:  # zero-shot recipes only: the figures are in the JSON, no curve to draw
        print(f"--plot: no stand-in training curves to plot, {args.plot} not written", file=sys.stderr)
    report(results, args.out)


if __name__ == "__main__":
    main()
