"""The idle clock the autoscaler sees: a deployment with a request in it now (held at the gateway, waiting or
running in an engine) is in use, however long ago that request arrived. Counting from the last arrival alone
would let a long request's deployment be scaled down under it. The live controller and the simulator both
apply it to the observation they build, so they put a deployment away at the same tick. Pure."""

from __future__ import annotations

from dataclasses import replace

from llmctl.autoscale.types import Observation


def in_use_now(obs: Observation) -> tuple[Observation, bool]:
    """(the observation, its idle clock at zero when a request is in the deployment; whether one is: the
    caller stores that as the deployment's last sign of use)."""
    if obs.demand > 0:
        return replace(obs, seconds_since_last_request=0.0), True
    return obs, False
