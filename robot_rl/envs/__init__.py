"""The envs a run acts in, built from its config: a project task's in-process simulator, a robot
through ROS 2 (`robot.enabled`), or any gymnasium env (`env.id`), each seen through the same
contract (dict observations, actions in [-1, 1], `info["success"]`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from robot_rl.envs.gym_env import GymEnv, ScriptedPolicy, make_gym_env

if TYPE_CHECKING:
    from robot_rl.run_config import TrainConfig

PROJECT_TASKS = ("PickCube-v0", "PegInsertion-v0")


def is_project_task(env_id: str) -> bool:
    return env_id.split("/", 1)[-1] in PROJECT_TASKS and ":" not in env_id


def make_env(cfg: TrainConfig, in_process: bool = False, evaluation: bool = False):
    """The env to act in: the task's in-process simulator (domain-randomised if configured, except for
    `evaluation`), or with `robot.enabled` (and not `in_process`) a `robot_rl.ros.RobotEnv` that
    observes and acts like it through ROS 2, or a gymnasium env. Only a learning robot env reads
    privileged state: an `evaluation` one is for the actor alone. With `action_history`, any of them
    observes its last commands."""
    env = _make_base_env(cfg, in_process, evaluation)
    if cfg.action_history:
        from robot_rl.action_history import ActionHistory

        env = ActionHistory(env, cfg.action_history)
    return env


def _make_base_env(cfg: TrainConfig, in_process: bool, evaluation: bool):
    if not is_project_task(cfg.env.id):
        if cfg.robot.enabled or cfg.obs_mode != "state" or cfg.randomization.enabled:
            raise ValueError(f"env.id {cfg.env.id!r} is a gymnasium env: robot, obs_mode and randomization apply "
                             f"to the project's tasks; configure your env through env.kwargs")
        return make_gym_env(cfg.env.id, cfg.env.kwargs, cfg.env.success_key)
    if cfg.env.kwargs:
        raise ValueError(f"env.kwargs apply to gymnasium envs; {cfg.env.id} takes obs_mode, image_size, cameras, "
                         f"randomization")
    privileged = cfg.agent.observes_privileged()
    if cfg.robot.enabled and not in_process:
        from robot_rl.ros.robot_env import RobotEnv, RobotEnvConfig

        if cfg.agent.toggles_gripper():
            raise ValueError("a discrete gripper agent (grasp_critic) is not wired to ROS 2 robots yet")
        overrides: dict[str, Any] = {"obs_mode": cfg.obs_mode, "domain_id": cfg.robot.domain_id}
        if cfg.obs_mode == "pixels":
            # An asymmetric critic (or a distillation teacher) reads the robot's object_state topic: a
            # tracker that is there while training (the stand-in publishes one).
            overrides.update(image_size=cfg.image_size, cameras=cfg.cameras, privileged=not evaluation and privileged)
        if cfg.robot.profile is not None:
            from hardware.robots import load_profile

            return RobotEnv(RobotEnvConfig.from_profile(load_profile(cfg.robot.profile), cfg.env.id, **overrides))
        overrides.update(namespace=cfg.robot.namespace, lockstep=cfg.robot.lockstep)
        return RobotEnv(RobotEnvConfig.for_task(cfg.env.id, **overrides))
    import sim

    # Privileged sim state for an asymmetric critic, or for a distillation teacher to read.
    kwargs: dict[str, Any] = {"obs_mode": cfg.obs_mode, "privileged": privileged}
    if cfg.randomization.enabled and not evaluation:
        kwargs["randomization"] = cfg.randomization
    if cfg.agent.toggles_gripper():  # the grasp head picks close/stay/open: the env's gripper toggles
        task = sim.TASKS[cfg.env.id.split("/", 1)[-1]]
        if not task.DEFAULT_CONFIG.action.gripper:
            raise ValueError(f"agent.grasp_critic needs a task with a gripper action; {cfg.env.id} has none")
        kwargs["action"] = dataclasses.replace(task.DEFAULT_CONFIG.action, gripper_mode="toggle")
    if cfg.obs_mode == "pixels":
        kwargs.update(image_size=cfg.image_size, cameras=cfg.cameras)
    elif cfg.reward.model is not None:  # the labeler's cameras are rendered at image_size
        kwargs.update(image_size=cfg.image_size)
    return sim.make(cfg.env.id, **kwargs)


def make_eval_env(cfg: TrainConfig):
    """The nominal in-process env, or with `robot.eval_namespace` a RobotEnv on that robot."""
    if cfg.robot.eval_namespace is None:
        return make_env(cfg, in_process=True, evaluation=True)
    robot = dataclasses.replace(cfg.robot, enabled=True, profile=None, namespace=cfg.robot.eval_namespace)
    return make_env(dataclasses.replace(cfg, robot=robot), evaluation=True)


def demo_policy(cfg: TrainConfig, env):
    """Who records scripted demos in `env`: `demo_policy` (module:function) or the task's expert."""
    if cfg.demo_policy is not None:
        if not isinstance(env.unwrapped, GymEnv):
            raise ValueError("demo_policy applies to gymnasium envs (env.id); the project's tasks have their "
                             "scripted experts")
        return ScriptedPolicy(cfg.demo_policy, env.unwrapped)
    if not is_project_task(cfg.env.id):
        raise ValueError(f"env.id {cfg.env.id!r} has no scripted expert: set num_demos=0, demo_path=<episodes>, "
                         f"or demo_policy=module:function")
    from sim.experts import expert_for

    return expert_for(cfg.env.id, env)


def with_labeler(env, cfg: TrainConfig):
    """`env` whose reward and success come from the configured labeler (reward.model), as on a robot."""
    from robot_rl.rewards.base import instruction_for
    from robot_rl.rewards.factory import make_labeler
    from robot_rl.rewards.wrapper import LabelerReward

    labeler = make_labeler(cfg.reward)
    if labeler.image_size is not None and labeler.image_size != cfg.image_size:
        raise ValueError(f"reward.model {cfg.reward.model} takes {labeler.image_size}px frames: set "
                         f"image_size={labeler.image_size}")
    return LabelerReward(env, labeler, instruction_for(cfg.reward.prompt or cfg.env.id),
                         cameras=cfg.reward.cameras or None, review_every=cfg.reward.review_every)
