"""trafl: post-training diffusion language models with Trajectory Flow baLancing (TraFL)."""

__version__ = "0.1.0"
