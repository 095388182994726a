"""Learning agents and their registry: `agent.name` in a run's config picks one.

A new algorithm is one module (a config subclassing `AgentConfig`, an `Agent` subclass) and one line
here; the training loop, the distributed learner and the actors never name an algorithm.
"""

from robot_rl.agents.base import (
    AGENTS,
    Agent,
    AgentConfig,
    agent_config,
    agent_spec,
    make_agent,
    register_agent,
)

register_agent("sac", "robot_rl.agents.sac:SACConfig", "robot_rl.agents.sac:SACAgent")
register_agent("crossq", "robot_rl.agents.crossq:CrossQConfig", "robot_rl.agents.crossq:CrossQAgent")
register_agent("bc", "robot_rl.agents.bc:BCConfig", "robot_rl.agents.bc:BCAgent")
register_agent("iql", "robot_rl.agents.iql:IQLConfig", "robot_rl.agents.iql:IQLAgent")
register_agent("calql", "robot_rl.agents.calql:CalQLConfig", "robot_rl.agents.calql:CalQLAgent")
register_agent("distill", "robot_rl.agents.distill:DistillConfig", "robot_rl.agents.distill:DistillAgent")

__all__ = ["AGENTS", "Agent", "AgentConfig", "agent_config", "agent_spec", "make_agent", "register_agent"]
