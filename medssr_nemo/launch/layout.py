"""The parallel layout a config implies: world = nodes x GPUs per node = TP x PP x DP."""

from __future__ import annotations

import dataclasses

from medssr_nemo.config.schema import MedSSRConfig


class LayoutError(ValueError):
    """The model's TP x PP does not divide the launched world."""


@dataclasses.dataclass(frozen=True)
class ParallelLayout:
    nodes: int
    gpus_per_node: int
    tensor_parallel: int
    pipeline_parallel: int

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def model_parallel(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def data_parallel(self) -> int:
        return self.world_size // self.model_parallel

    def check(self) -> "ParallelLayout":
        if self.world_size % self.model_parallel:
            raise LayoutError(
                f"model.tensor_parallel_size={self.tensor_parallel} x model.pipeline_parallel_size="
                f"{self.pipeline_parallel} = {self.model_parallel} GPUs per model replica does not divide "
                f"launch.nodes={self.nodes} x launch.gpus_per_node={self.gpus_per_node} = {self.world_size} GPUs")
        if self.tensor_parallel > self.gpus_per_node:
            raise LayoutError(f"model.tensor_parallel_size={self.tensor_parallel} spans nodes "
                              f"(launch.gpus_per_node={self.gpus_per_node}); keep tensor parallelism inside a node")
        return self


def layout_of(cfg: MedSSRConfig) -> ParallelLayout:
    return ParallelLayout(cfg.launch.nodes, cfg.launch.gpus_per_node, cfg.model.tensor_parallel_size,
                          cfg.model.pipeline_parallel_size).check()
