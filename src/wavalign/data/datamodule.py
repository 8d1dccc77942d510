"""DataModule serving prompt batches (lists of DialogueExample) from JSONL files in either schema."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from wavalign.data.check import check_files
from wavalign.data.schema import DialogueExample, SchemaError
from wavalign.data.sources import LazyExamples, open_source


class ExampleDataset(Dataset):
    def __init__(self, examples: Sequence[DialogueExample]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[int, DialogueExample]:
        return i, self.examples[i]


class RepeatBatchSampler(Sampler[list[int]]):
    """Yields each batch of indices `repeat` times in a row, so one rollout batch serves several updates.

    The order of epoch e is a function of (seed + e) alone, so a resumed run can continue at any batch: `skip(n)`
    makes the next iteration start n batches into the run (at epoch n // len(self), that many batches in).

    Under several processes every rank draws the same epoch order and cuts it into global batches of
    batch_size x world_size prompts; rank r takes the r-th slice of each. So no prompt is seen twice in an epoch
    across ranks, a prompt's group stays whole on one rank, and the ranks' batches joined in rank order are exactly
    the batches of a one-process run with batch_size x world_size (the same prompts; the sampled replies differ,
    each rank drawing from its own stream). Lightning cannot shard a custom batch sampler itself, hence `trainer.use_distributed_sampler: false`
    (the CLI's default)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        repeat: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.n, self.batch_size, self.repeat, self.shuffle, self.seed = n, batch_size, repeat, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._skip_in_epoch = 0

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def skip(self, batches: int) -> None:
        per_epoch = len(self)
        if per_epoch == 0:
            raise ValueError(f"no full batch of {self.batch_size} x {self.world_size} processes in {self.n} examples")
        self.epoch, self._skip_in_epoch = divmod(batches, per_epoch)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist() if self.shuffle else list(range(self.n))
        self.epoch += 1
        skip, self._skip_in_epoch = self._skip_in_epoch, 0
        step, mine = self.global_batch_size, self.rank * self.batch_size
        for s in range(0, self.n - step + 1, step):  # drop_last: groups stay full size, every rank gets a batch
            batch = order[s + mine : s + mine + self.batch_size]
            for _ in range(self.repeat):
                if skip:
                    skip -= 1
                    continue
                yield batch

    def __len__(self) -> int:
        return (self.n // self.global_batch_size) * self.repeat


def collate_examples(items: list[tuple[int, DialogueExample]]) -> dict:
    return {"ids": [i for i, _ in items], "examples": [e for _, e in items]}


class WavAlignDataModule(pl.LightningDataModule):
    """Prompt batches (lists of DialogueExample) from datasets in the reference or plain schema: JSONL, parquet
    files or globs, save_to_disk folders or hub:NAME[:CONFIG[:SPLIT]] (`data.sources`), read row by row.

    setup checks every line of every file first and reports all problems at once. Training prompts are sharded
    across processes by RepeatBatchSampler, while validation and test run the whole split on every process.

    Args:
        train_file: Training prompts with their demonstrations (reference or plain schema): a JSONL file, parquet
            file or glob, save_to_disk folder or hub:NAME[:CONFIG[:SPLIT]].
        val_file: Validation examples (any source train_file takes), run at each validation; None skips validation.
        test_file: Test examples for `wavalign test` (any source train_file takes); None when there is no test split.
        predict_file: The prompts `wavalign predict` answers (either schema; the demonstration may be left out),
            all of them, in file order; None when not predicting.
        batch_size: Prompts per process and step; the global batch is batch_size x processes, and each prompt gets
            model.group_size rollouts.
        eval_batch_size: Examples per batch in validation, test and predict; raise it to evaluate faster when
            memory allows.
        repeat_batches: How many optimiser steps in a row reuse each rollout batch; linked to the model's
            ppo_epochs by the CLI, so set model.ppo_epochs instead.
        max_eval_examples: Use only the first N validation and test examples; None uses them all.
        shuffle: Shuffle the training prompts each epoch (the order depends on seed and epoch only, so a resumed run
            continues exactly); False keeps file order.
        seed: Seed of the training order and of the loaders' own random generators.
        check_audio: Also decode every audio file during the start-up check (slower; `python -m wavalign
            check-data` does it on its own).
        max_tokens: Refuse, before step 1, every row whose prompt plus demonstration is longer than this many of
            the policy's tokens (a row longer than the model's context is refused whatever this says); None: the
            context alone.
    """

    def __init__(
        self,
        train_file: str,
        val_file: str | None = None,
        test_file: str | None = None,
        predict_file: str | None = None,
        batch_size: int = 4,
        eval_batch_size: int = 8,
        repeat_batches: int = 1,
        max_eval_examples: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        check_audio: bool = False,
        max_tokens: int | None = None,
    ) -> None:
        super().__init__()
        self.train_file, self.val_file, self.test_file = train_file, val_file, test_file
        self.predict_file = predict_file
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.repeat_batches, self.max_eval_examples = repeat_batches, max_eval_examples
        self.shuffle, self.seed, self.check_audio = shuffle, seed, check_audio
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"data.max_tokens must be >= 1 or null, got {max_tokens}")
        self.max_tokens = max_tokens  # read by the module's start-up row check (wavalign.data.row_limits)
        self.splits: dict[str, Sequence[DialogueExample]] = {}  # parsed row by row when used (data.sources)
        self._resume_after = 0

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":  # prompts only: the training files are not read
            if not self.predict_file:
                raise ValueError(
                    "no prompts to predict: set data.predict_file (a JSONL file) in the config or on the command line"
                )
            if "predict" not in self.splits:  # a prompt set is small: parsed whole, so a bad row fails here
                prompts = list(LazyExamples(open_source(self.predict_file), need_target=False))
                if not prompts:
                    raise SchemaError(f"{self.predict_file}: no examples")
                self.splits["predict"] = prompts
            return
        todo = [
            (name, path)
            for name, path in (("train", self.train_file), ("val", self.val_file), ("test", self.test_file))
            if path and name not in self.splits
        ]
        if todo:  # every problem of every file at once, before any training (audio decoding: check_audio)
            report = check_files([p for _, p in todo], decode_audio=self.check_audio)
            if not report.ok:
                raise SchemaError(report.summary([p for _, p in todo]))
            for name, path in todo:  # the check parsed them: no second read
                self.splits[name] = report.parsed[Path(path)]
        train = self.splits.get("train")
        rank, world_size = self.process_slot()
        if train is not None and len(train) < self.batch_size * world_size:
            raise ValueError(
                f"{self.train_file}: {len(train)} examples, fewer than batch_size={self.batch_size} x {world_size} processes"
            )

    def process_slot(self) -> tuple[int, int]:
        """(global rank, world size) of this process: (0, 1) outside a Trainer."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def resume_after(self, batches: int) -> None:
        """Continue a resumed run at its next batch: the train loader skips the `batches` already trained on."""
        self._resume_after = batches

    def train_dataloader(self) -> DataLoader:
        data = ExampleDataset(self.splits["train"])
        rank, world_size = self.process_slot()
        sampler = RepeatBatchSampler(
            len(data), self.batch_size, self.repeat_batches, self.shuffle, self.seed, rank, world_size
        )
        if self._resume_after:
            sampler.skip(self._resume_after)
        # Its own generator: DataLoader otherwise draws a worker seed from the global stream at every epoch start,
        # which would tie the rollouts' random numbers to where epochs begin (and break exact resume).
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_sampler=sampler, collate_fn=collate_examples, generator=generator)

    def _eval_loader(self, split: str) -> DataLoader:
        if split not in self.splits:
            raise ValueError(f"no {split} data: set data.{split}_file in the config")
        examples = self.splits[split] if split == "predict" else self.splits[split][: self.max_eval_examples]
        generator = torch.Generator().manual_seed(self.seed)  # as for training: no draw from the global stream
        return DataLoader(
            ExampleDataset(examples), batch_size=self.eval_batch_size, collate_fn=collate_examples, generator=generator
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val") if self.val_file else []

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")
