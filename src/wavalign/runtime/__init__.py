"""The run's machinery: multi-process gathering, sharding, exact resume, worker pools, warm starts, progress lines."""
