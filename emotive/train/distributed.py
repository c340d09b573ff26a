"""Multi-host start-up: `jax.distributed.initialize` from flags, environment, or auto-detection.

Precedence: explicit arguments (the CLI's --coordinator/--num-processes/--process-id),
then the environment (EMOTIVE_COORDINATOR, EMOTIVE_NUM_PROCESSES, EMOTIVE_PROCESS_ID),
then JAX's own cluster detection (TPU pods, Slurm, Open MPI) when a cluster is
visible, else a single process. On CPU, processes exchange data through gloo.
"""

from __future__ import annotations

import os

from emotive.errors import UserError

ENV_COORDINATOR = "EMOTIVE_COORDINATOR"
ENV_NUM_PROCESSES = "EMOTIVE_NUM_PROCESSES"
ENV_PROCESS_ID = "EMOTIVE_PROCESS_ID"


def _cluster_visible() -> bool:
    """Whether JAX's auto-detection has something to detect (more than one task)."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return True
    if int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return True
    # TPU pod slices: the TPU runtime names the other workers.
    return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> tuple[int, int]:
    """Starts the JAX distributed runtime if this is a multi-process job.

    Returns (process_index, process_count). Must run before any JAX computation.
    """
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR)
    if num_processes is None and os.environ.get(ENV_NUM_PROCESSES):
        num_processes = _int_env(ENV_NUM_PROCESSES)
    if process_id is None and os.environ.get(ENV_PROCESS_ID):
        process_id = _int_env(ENV_PROCESS_ID)
    explicit = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(explicit) and not all(explicit):
        raise UserError("multi-process runs need all of --coordinator HOST:PORT, "
                        "--num-processes N and --process-id I (or the EMOTIVE_* variables)")

    import jax  # after argument checks: initialize must precede any backend use

    if all(explicit):
        if not 0 <= process_id < num_processes:
            raise UserError(f"--process-id {process_id} must be in [0, {num_processes})")
        if ":" not in coordinator:
            raise UserError(f"--coordinator '{coordinator}' must be HOST:PORT")
        # Harmless on accelerators (it only concerns CPU collectives); needed on CPU.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=num_processes, process_id=process_id)
    elif _cluster_visible():
        jax.distributed.initialize()
    return jax.process_index(), jax.process_count()


def _int_env(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise UserError(f"environment variable {name}={os.environ[name]!r} must be an "
                        "integer") from None
