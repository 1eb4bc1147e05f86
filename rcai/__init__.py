"""rcai: hardware-aware cost modeling and deployment for NAS of diffusion models."""
__version__ = "0.1.0"
