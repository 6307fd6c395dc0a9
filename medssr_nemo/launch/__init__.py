"""Cluster launch: the parallel layout a config implies, the srun/torchrun command that runs it,
the SLURM_* -> torch.distributed environment mapping, and the per-GPU memory plan."""
