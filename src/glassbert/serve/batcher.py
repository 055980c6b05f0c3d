"""How `glassbert serve` gathers requests into batches: an asyncio queue of :class:`Job` and worker threads
that each run one gathered batch of one kind through :meth:`Service.run`."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from ..errors import ServeError
from .service import Service


# ─── batching requests together ─────────────────────────────────────────────────────────────
@dataclass
class Job:
    kind: str                   # "embed" | "predict" | "fill-mask": requests of one kind share a batch
    items: list                 # what Service.run takes, one entry per input of the request
    tokens: int                 # real tokens in items (the batch budget)
    future: asyncio.Future = field(repr=False)


class Batcher:
    """An asyncio queue of jobs and ``workers`` model threads. A free worker takes the first job waiting
    and adds the next ones of the same kind while their tokens fit in ``max_batch_tokens`` and in its fair
    share of the work (the tokens waiting and being computed, over the workers), runs them as one call of
    ``service.run`` (length-sorted there) and hands each job its own slice of the results. While the
    workers compute, new requests queue up: the busier the server, the larger its batches.

    Why, by default, one single-threaded worker per intra-op thread rather than one worker with all of
    them (measured on 2 cores with MiniLM and real sentences in random order, bench/serve.py): one
    worker with 2 threads computes batches of 16 at 140 texts/s and of 32 at 180 (its threads wait for
    each other on small matrix products), and it idles while its answers go out and the next requests
    come in; a 1-thread worker computes about 105 texts/s at any batch size from 16 up, and two of them
    overlap: one computes while the other's clients send their next requests. The fair share keeps one
    worker from taking every waiting request while the other idles (without it, 32 clients settled into
    batches of 29 and 3). Requests one at a time gain nothing from a second thread either (one client:
    p50 14 ms with two 1-thread workers, 16 ms with one 2-thread worker). ``--workers 1`` gives all the
    threads to one batch at a time (the default on a GPU, where one stream runs the batches anyway)."""

    def __init__(self, service: Service):
        self.service = service
        self.config = service.config
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=self.config.max_queue)
        self.threads = torch.get_num_threads()          # intra-op threads of the process, shared among workers
        self.workers = self.config.workers or (self.threads if str(service.device) == "cpu" else 1)
        self.threads_per_worker = max(1, self.threads // self.workers)
        # torch's thread count is one setting per process: each worker sets it as it starts, stop() restores it
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="glassbert-model",
                                           initializer=torch.set_num_threads, initargs=(self.threads_per_worker,))
        self.batches = 0            # how many model calls ran, and over how many requests (in /info)
        self.requests = 0
        self.waiting_tokens = 0     # in the jobs queued (and one held back for the next batch)
        self.running_tokens = 0     # in the batches the workers are computing
        self._free: asyncio.Semaphore | None = None     # one unit per idle worker
        self._task: asyncio.Task | None = None
        self._batches: set[asyncio.Task] = set()        # batches in flight (asyncio keeps only weak references)

    def start(self) -> None:
        self._free = asyncio.Semaphore(self.workers)
        self._task = asyncio.get_running_loop().create_task(self._work(), name="glassbert-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.gather(*self._batches, return_exceptions=True)  # the batches in flight finish
        self.executor.shutdown(wait=True, cancel_futures=True)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    async def submit(self, kind: str, items: list, tokens: int) -> list:
        if tokens > self.config.max_batch_tokens:
            raise ServeError(413, f"the request holds {tokens} tokens, more than the server runs at once "
                                  f"(--max-batch-tokens {self.config.max_batch_tokens}): send fewer or shorter "
                                  "inputs per request")
        job = Job(kind, items, tokens, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise ServeError(429, f"the server is busy: {self.config.max_queue} requests are already waiting "
                                  "(--max-queue): retry in a moment, or send more inputs per request and fewer "
                                  "requests", "overloaded") from None
        self.waiting_tokens += tokens
        return await job.future

    async def _work(self) -> None:
        """Gather a batch whenever a worker is free, and start it."""
        assert self._free is not None
        held: Job | None = None     # a job that did not fit the last batch: it starts the next one
        while True:
            await self._free.acquire()
            first = held or await self.queue.get()
            held = None
            share = -(-(self.waiting_tokens + self.running_tokens) // self.workers)  # ceil
            jobs, tokens = [first], first.tokens
            while tokens < share and not self.queue.empty():
                job = self.queue.get_nowait()
                if job.kind != first.kind or tokens + job.tokens > self.config.max_batch_tokens:
                    held = job
                    break
                jobs.append(job)
                tokens += job.tokens
            self.waiting_tokens -= tokens
            jobs = [j for j in jobs if not j.future.done()]  # a client that went away is not computed
            if not jobs:
                self._free.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run(first.kind, jobs, tokens))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run(self, kind: str, jobs: list[Job], tokens: int) -> None:
        """One batch on a worker thread; each job gets its own slice of the results."""
        assert self._free is not None
        items = [item for job in jobs for item in job.items]
        self.running_tokens += tokens
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, self.service.run, kind, items)
        except Exception as e:  # a library error (or a bug) belongs to these requests, not to the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)
            return
        finally:
            self.running_tokens -= tokens
            self._free.release()
        self.batches += 1
        self.requests += len(jobs)
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[start:start + len(job.items)])
            start += len(job.items)
