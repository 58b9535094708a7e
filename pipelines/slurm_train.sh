#!/bin/bash
# Multi-node training on SLURM: one torchrun agent per node (srun starts them), GPUS_PER_NODE processes each,
# meeting through torchrun's c10d rendezvous on the first node of the allocation.
#
#   sbatch --nodes=4 pipelines/slurm_train.sh configs/train/sfno_synth.yaml [--resume] [--set key=value ...]
#
# The run folder (output_dir of the config) and the training store must be on a filesystem every node sees:
# rank 0 alone writes last.pt / best.pt / model.pt (atomically: a temporary file renamed into place), and on
# --resume every rank reads last.pt. data.batch_size is the global batch, divided among all the processes
# (nodes x GPUS_PER_NODE), so the loss trajectory does not depend on how many nodes run it.
# Resubmitting the same script with --resume continues a run that hit its time limit.

#SBATCH --job-name=forecast-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one torchrun agent per node; it starts the per-GPU processes
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail

CONFIG=${1:?usage: sbatch [--nodes=N] pipelines/slurm_train.sh CONFIG [forecast train options]}
shift
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-4}}
FORECAST_VENV=${FORECAST_VENV:-.venv}
RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_PORT=${RDZV_PORT:-29400}

# Each process gets its share of the node's cores for its intra-op threads.
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-$GPUS_PER_NODE} / GPUS_PER_NODE ))

srun --kill-on-bad-exit=1 "$FORECAST_VENV/bin/torchrun" \
    --nnodes "$SLURM_JOB_NUM_NODES" \
    --nproc_per_node "$GPUS_PER_NODE" \
    --rdzv-backend c10d \
    --rdzv-endpoint "$RDZV_HOST:$RDZV_PORT" \
    --rdzv-id "$SLURM_JOB_ID" \
    --max-restarts 0 \
    -m forecast.cli train "$CONFIG" --no-progress "$@"
