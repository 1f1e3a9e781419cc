"""Offline batch jobs: an OpenAI Batch API input file sent to a deployment's replicas (or its gateway), with
results appended to an output file that doubles as the checkpoint, so a re-run sends only what is missing.

Pure modules (no I/O): `inputs` (parse and validate request lines), `results` (result lines and the
checkpoint they form), `retry` (what to retry, how long to wait), `sizing` (concurrency from the performance
model), `summary` (totals and cost). Edges: `outfile` (the output file), `pool` (replica health), `runner`
(HTTP and signals), `target` (a deployment from the state store), `jobs` (detached jobs in the store).
"""
