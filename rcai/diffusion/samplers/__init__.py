"""Samplers by name: get_sampler("ddpm" | "ddim", schedule, steps=..., **options)."""
from .base import Sampler, StepOutput, get_sampler, list_samplers, register_sampler, sampler_class
from .ddim import DDIMSampler
from .ddpm import DDPMSampler

__all__ = [
    "Sampler",
    "StepOutput",
    "get_sampler",
    "list_samplers",
    "register_sampler",
    "sampler_class",
    "DDPMSampler",
    "DDIMSampler",
]
