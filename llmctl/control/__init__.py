"""The controller: reconcile loop, actuation, health checks and metric scraping (edge), around pure helpers."""
