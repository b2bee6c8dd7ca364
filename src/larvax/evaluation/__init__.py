"""Evaluation: episodes that record the world and the agent, and what reads them.

``loop`` (:func:`~larvax.evaluation.loop.evaluate`: vmapped, chunked, recording episodes),
``hdf5`` (episode logs in the reference's layout, atomic writes), ``metrics`` (per-episode
CSV and summary), ``cli`` (``larvax eval``); videos and plots read the logs. See
docs/evaluation.md. Nothing is imported here, so ``larvax --help`` stays free of JAX.
"""
