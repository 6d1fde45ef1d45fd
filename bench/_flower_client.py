"""Flower's side of the side-by-side: a ClientApp that trains hydrafed's own MnistTask.

Runs inside the bench venv (Flower + Ray), where a .pth file puts hydrafed on the path, so each
Flower client trains exactly what a ``hydrafed simulate`` party trains: same shard (from the same
seed), same model, optimiser, batch order and schedule. The task is built once per Ray worker
process and cached, as a well-written Flower app would cache its data.
"""

from __future__ import annotations

import json
import os
import time

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from hydrafed.spec import TrainingSpec
from hydrafed.worker.mnist_task import MnistTask

SPEC_ENV = "HYDRAFED_BENCH_SPEC"
_TASKS: dict[tuple[int, int], MnistTask] = {}

app = ClientApp()


def bench_spec() -> TrainingSpec:
    """The TrainingSpec the runner passed in the environment (JSON, camelCase)."""
    return TrainingSpec.model_validate(json.loads(os.environ[SPEC_ENV]))


def _task(partition: int, parties: int) -> MnistTask:
    key = (partition, parties)
    if key not in _TASKS:
        torch.set_num_threads(1)
        _TASKS[key] = MnistTask.from_spec(bench_spec(), party_index=partition, parties=parties)
    return _TASKS[key]


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Load the global weights, train one round, send weights and timings back."""
    partition = int(context.node_config["partition-id"])
    parties = int(context.node_config["num-partitions"])
    task = _task(partition, parties)
    task.load_exchanged_state(msg.content["arrays"].to_torch_state_dict())
    round_no = int(msg.content["config"]["server-round"])
    start = time.time()
    result = task.train_round(round_no)
    end = time.time()
    metrics = MetricRecord(
        {
            "num-examples": result.samples,
            "partition": partition,
            "train-start": start,
            "train-end": end,
            "train-seconds": result.seconds,
        }
    )
    arrays = ArrayRecord(task.exchanged_state())
    return Message(content=RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)
