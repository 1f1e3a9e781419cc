"""Packaged argparse snapshots of the pinned engines (`<engine>-<version>.json`), read by llmctl.engines.snapshots."""
