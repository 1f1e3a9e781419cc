"""Pure facts about GPUs and models; no I/O (loading a config.json from disk is in llmctl.config.models)."""

from llmctl.catalog.gpus import GPU, GPUS, cpu_device, find_gpu, get_gpu
from llmctl.catalog.models import MODELS, Model, find_model, model_from_hf_config

__all__ = [
    "GPU",
    "GPUS",
    "MODELS",
    "Model",
    "cpu_device",
    "find_gpu",
    "find_model",
    "get_gpu",
    "model_from_hf_config",
]
