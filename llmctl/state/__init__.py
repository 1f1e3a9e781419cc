"""SQLite state store: host facts now; desired deployments, replicas, events and metric samples to come."""

from llmctl.state.store import Store, default_path

__all__ = ["Store", "default_path"]
