"""Pure planner: deployments + inventory -> replicas (engine, argv, env, host, GPUs, port).

To plan files on disk (playbook + inventory paths), use `llmctl.planning.plan_files`."""

from llmctl.planner.plan import needed_flagspecs, plan_playbook
from llmctl.planner.types import Decision, Plan, PlannedReplica, Shape

__all__ = ["Decision", "Plan", "PlannedReplica", "Shape", "needed_flagspecs", "plan_playbook"]
