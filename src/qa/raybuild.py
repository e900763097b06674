"""Indexing on a Ray cluster: parsing and sentence splitting, then embedding, as Ray Data stages.

``qa index --workers N`` starts a local cluster of N CPUs; ``--ray ADDRESS`` joins a running one.
Parsing and embedding each run in a fixed pool of actors (``map_batches`` with
``compute=ActorPoolStrategy``), one model per embedding actor, so each worker loads the model once
and Ray streams the batches to them with back-pressure and retries a batch whose worker died.

The result is the same index as a single-process build: the driver forms exactly the batches
the single-process build embeds (longest chunks first, ``embed_batch`` at a time) and sends each
one whole to one actor, so every chunk is encoded with the same neighbours and padding (which
matters for int8, whose activation scale is per batch), and the results come back in order.
Chunking (with the model's tokenizer) stays in the driver.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import require

Batch = tuple[list[str], list[list[tuple[int, int]]]]  # texts and, per text, its sentence spans


class _Parse:
    """Ray Data stage: parse and split a batch of files (no state: any actor of the pool takes any batch)."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from .readers import prepare

        out = []
        for blob in batch["task"]:
            item, data = pickle.loads(blob)
            out.append(pickle.dumps(prepare(item, data)))
        return {"i": batch["i"], "result": np.array(out, dtype=object)}


class _Embed:
    """Ray Data stage: one embedder per actor; each row is one whole build batch."""

    def __init__(self, make_embedder: Callable[[], Any]) -> None:
        self.embedder = make_embedder()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from .embed import embed_with_spans

        out = []
        for blob in batch["batch"]:
            texts, spans = pickle.loads(blob)
            vectors, pooled = embed_with_spans(self.embedder, texts, spans)
            out.append(pickle.dumps((np.asarray(vectors, dtype=np.float32), [np.asarray(p) for p in pooled])))
        return {"i": batch["i"], "result": np.array(out, dtype=object)}


@dataclass
class RayRunner:
    """Runs a build's parsing and embedding on Ray: ``address`` of a cluster, or ``workers`` CPUs here."""

    make_embedder: Callable[[], Any]
    workers: int = 2
    address: str | None = None
    _started: bool = field(default=False, init=False)

    def _ray(self) -> Any:
        ray = require("ray")
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.workers, **kwargs)
            self._started = True
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.execution_options.preserve_order = True
        return ray

    def prepare_all(self, tasks: Sequence[Any], on_done: Callable[[], None] | None = None) -> list[Any]:
        """``readers.prepare`` of every task, in order, as a Ray Data stage."""
        if not tasks:
            return []
        ray = self._ray()
        items = [{"i": i, "task": pickle.dumps(t)} for i, t in enumerate(tasks)]
        blocks = min(len(items), 4 * self.workers)
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        pool = ray.data.ActorPoolStrategy(size=min(self.workers, blocks))
        rows = ds.map_batches(_Parse, batch_size=8, compute=pool, num_cpus=1).take_all()
        results: list[Any] = [None] * len(tasks)
        for row in rows:
            results[int(row["i"])] = pickle.loads(row["result"])
            if on_done is not None:
                on_done()
        return results

    def embed_batches(self, batches: Sequence[Batch]) -> list[tuple[np.ndarray, list[np.ndarray]]]:
        """``embed_with_spans`` of every batch, in order, on an actor pool of ``workers`` models."""
        if not batches:
            return []
        ray = self._ray()
        items = [{"i": i, "batch": pickle.dumps(b)} for i, b in enumerate(batches)]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        rows = ds.map_batches(
            _Embed,
            fn_constructor_args=(self.make_embedder,),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(items))),
            num_cpus=1,
        ).take_all()
        results: list[Any] = [None] * len(batches)
        for row in rows:
            results[int(row["i"])] = pickle.loads(row["result"])
        return results

    def close(self) -> None:
        if self._started:
            require("ray").shutdown()
            self._started = False
