"""WavAlign: adaptive hybrid RL/SFT post-training for end-to-end spoken dialogue models."""

__version__ = "0.1.0"
