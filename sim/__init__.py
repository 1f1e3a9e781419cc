"""Capacity simulator (SimPy). Replays traffic through llmctl's own autoscaling code."""
