"""Edge helpers of the performance model: benchmarking live servers and reading/writing profile files."""
