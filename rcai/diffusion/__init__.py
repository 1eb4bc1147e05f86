"""SR3 diffusion, independent of the network: schedule, training loss, samplers, sampling loop."""
from .denoiser import Denoiser, TorchDenoiser
from .samplers import DDIMSampler, DDPMSampler, Sampler, StepOutput, get_sampler, list_samplers, register_sampler
from .sampling import SampleResult, make_sampler, sample
from .schedule import NoiseSchedule, ScheduleConfig
from .training import diffusion_loss, preset_loss, q_sample, sample_gamma, sample_timesteps

__all__ = [
    "Denoiser",
    "TorchDenoiser",
    "Sampler",
    "StepOutput",
    "DDPMSampler",
    "DDIMSampler",
    "get_sampler",
    "list_samplers",
    "register_sampler",
    "SampleResult",
    "sample",
    "NoiseSchedule",
    "ScheduleConfig",
    "diffusion_loss",
    "preset_loss",
    "q_sample",
    "sample_gamma",
    "sample_timesteps",
]
