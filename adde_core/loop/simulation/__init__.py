"""Headless simulation of the loop against baselines: data in, the engine with the oracle, a table and a report out."""

from adde_core.loop.simulation.data import EmbedFn, SimulationData, embedder_fn
from adde_core.loop.simulation.run import full_data_accuracy, simulate

__all__ = ["EmbedFn", "SimulationData", "embedder_fn", "full_data_accuracy", "simulate"]
