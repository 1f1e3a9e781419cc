"""Packaged argparse snapshots of the engines (`<engine>-<version>.json`); read by llmctl.engines.snapshots."""
