"""llmctl: control plane and capacity simulator for self-hosted LLM serving."""

__version__ = "0.1.0"
