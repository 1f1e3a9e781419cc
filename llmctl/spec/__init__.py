"""Typed desired state, pure: what a deployment should be, as `llmctl apply` records it."""
