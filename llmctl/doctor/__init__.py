"""`llmctl doctor`: what an apply would need, checked on every host before anything runs.

`checks` is pure (probe results and plan needs in, rows out); `probe` is the one-round-trip script each host
runs and its parser; `run` plans, reaches the hosts and turns what came back into rows."""
