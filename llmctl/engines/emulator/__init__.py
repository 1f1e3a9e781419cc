"""The emulated engine: vLLM's or SGLang's API and metrics, timed by the performance model (no GPU)."""
