"""The store codec of the desired state (llmctl.spec.deployment): one JSON document per deployment, with a
hash of it and the generation of the apply that wrote it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from llmctl.catalog.models import Model
from llmctl.errors import LlmctlError
from llmctl.planner.types import Decision, Shape
from llmctl.spec.deployment import AdapterSpec, DesiredDeployment, ScalingSpec, Slot
from llmctl.state.records import deployments, put_deployment
from llmctl.state.store import Store


def to_json(d: DesiredDeployment) -> dict[str, Any]:
    return asdict(d)


def _shape(data: dict[str, Any] | None) -> Shape | None:
    if data is None:
        return None
    m = data["model_spec"]
    model = Model(**{**m, "eagle3_drafts": tuple(m["eagle3_drafts"]), "aliases": tuple(m["aliases"])})
    decisions = tuple(Decision(**d) for d in data["decisions"])
    return Shape(**{**data, "model_spec": model, "decisions": decisions})


def _slot(s: dict[str, Any]) -> Slot:
    return Slot(**{**s, "gpus": tuple(s["gpus"]), "argv": tuple(s["argv"]), "shape": _shape(s.get("shape"))})


def from_json(name: str, data: dict[str, Any]) -> DesiredDeployment:
    try:
        slots = tuple(_slot(s) for s in data["slots"])
        scaling = data["scaling"]
        schedule = tuple((float(t), int(n)) for t, n in scaling.get("schedule", ()))
        return DesiredDeployment(
            **{
                **data,
                "name": name,
                "scaling": ScalingSpec(**{**scaling, "schedule": schedule}),
                "slots": slots,
                "adapters": tuple(AdapterSpec(**a) for a in data.get("adapters", ())),
            }
        )
    except (KeyError, TypeError) as exc:
        raise LlmctlError(
            f"deployment {name!r} in the state store was written by another llmctl version ({exc}); "
            "re-apply its playbook"
        ) from None


def put_desired(store: Store, d: DesiredDeployment) -> None:
    data = to_json(d)
    put_deployment(store, d.name, data, hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16])


@dataclass(frozen=True)
class DesiredState:
    deployments: dict[str, DesiredDeployment]
    unreadable: dict[str, str]  # name -> why it cannot be decoded (corrupt, or another llmctl version's)


def read_desired(store: Store) -> DesiredState:
    """Every deployment's desired state; one that cannot be decoded is set aside with the reason, so that a
    long-running process quarantines it and goes on managing the rest."""
    good: dict[str, DesiredDeployment] = {}
    bad: dict[str, str] = {}
    for name, text in deployments(store).items():
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise LlmctlError(
                    f"deployment {name!r} in the state store is not a JSON object; re-apply its playbook"
                )
            good[name] = from_json(name, data)
        except json.JSONDecodeError as exc:
            bad[name] = (
                f"deployment {name!r} in the state store is not valid JSON ({exc.msg} at {exc.pos}); "
                "re-apply its playbook"
            )
        except LlmctlError as exc:
            bad[name] = str(exc)
    return DesiredState(good, bad)


def load_desired(store: Store) -> dict[str, DesiredDeployment]:
    """Every deployment's desired state that can be read: one corrupt row is that deployment's problem
    alone (read_desired says which and why; desired_of raises for it by name)."""
    return read_desired(store).deployments


def desired_of(store: Store, name: str) -> DesiredDeployment | None:
    """One deployment's desired state, None when the store has none; raises, with the reason, when its
    row cannot be read."""
    state = read_desired(store)
    if name in state.unreadable:
        raise LlmctlError(state.unreadable[name])
    return state.deployments.get(name)


def next_generation(store: Store) -> int:
    """One more than any generation recorded: every apply gets its own number."""
    return max((d.generation for d in load_desired(store).values()), default=0) + 1


def set_stopped(store: Store, name: str, stopped: bool) -> DesiredDeployment:
    """Mark a deployment stopped (no replica wanted) or wanted again; returns what was recorded."""
    dep = desired_of(store, name)
    if dep is None:
        raise LlmctlError(f"no deployment named {name!r} in the state store {store.path}")
    changed = replace(dep, stopped=stopped)
    put_desired(store, changed)
    return changed
