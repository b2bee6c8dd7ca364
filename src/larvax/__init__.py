"""larvax: memory-based reinforcement learning in JAX.

Simfish (a virtual larval zebrafish), composable recurrent networks in Flax NNX,
R2D2 and recurrent PPO agents, and the ``larvax`` command-line tool.
"""

import warnings as _warnings

# distrax imports tfp-nightly, whose import emits DeprecationWarnings that are not ours.
_warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"tensorflow_probability.*")
_warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"tfp.*")

__version__ = "0.1.0"
__all__ = ["__version__"]
