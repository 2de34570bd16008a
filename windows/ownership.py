"""Which worker closes which model's windows: the model stage's shard of the fleet.

A model belongs to one partition of the predictions topic,
``owner_partition(model) = CRC32(model) % partitions``, and is owned by the
worker of the consumer group that holds that partition. Ownership therefore
follows the group: a rebalance moves models with their partitions, and two
workers never own the same model. The hash is CRC-32 (IEEE, the one of
``zlib.crc32``) of the model's UTF-8 name, which ClickHouse computes as
``CRC32(model)``, so the store filters rows by owned partitions itself
(:data:`OWNED_SQL`).

This module is pure (standard library only): ``windows`` uses it directly;
``alerts`` must not import ``windows``, so the model stage hands the alert
engine a predicate (:meth:`Shard.owns`).

>>> owner_partition("fraud", 6), owner_partition("fraud", 1)
(4, 0)
>>> shard = Shard(6, frozenset({4, 5}))
>>> shard.owns("fraud"), shard.owns("churn"), owner_partition("churn", 6)
(True, False, 0)
>>> shard.params()
{'shard_n': 6, 'shard_owned': [4, 5]}
>>> Shard.everything().owns("anything"), Shard.none(6).owns("fraud")
(True, False)
>>> Shard(6, frozenset({2})).checkpoint(2), Shard.everything().checkpoint(0)
('model_stage/6/2', 'model_stage')
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = ["CHECKPOINT", "OWNED_SQL", "Shard", "checkpoint_name", "owner_partition", "parse_checkpoint"]

# A filter on a ``model`` column: the rows of the models a shard owns (parameters from ``Shard.params``).
OWNED_SQL = "CRC32(model) % {shard_n:UInt32} IN {shard_owned:Array(UInt32)}"
# The model stage's checkpoint of the whole fleet (a single-partition layout: one worker closes everything).
CHECKPOINT = "model_stage"


def owner_partition(model: str, partitions: int) -> int:
    """The partition of the predictions topic whose holder closes ``model``'s windows.

    >>> owner_partition("demo.churn", 4) == __import__("zlib").crc32(b"demo.churn") % 4
    True
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return zlib.crc32(model.encode("utf-8")) % partitions


def checkpoint_name(partition: int, partitions: int) -> str:
    """The ``checkpoints`` row of one partition's models; the whole fleet (one partition) keeps the old name."""
    return CHECKPOINT if partitions == 1 else f"{CHECKPOINT}/{partitions}/{partition}"


def parse_checkpoint(name: str) -> tuple[int, int] | None:
    """(partition, partitions) of a model-stage checkpoint name, or None for another row.

    >>> parse_checkpoint("model_stage/6/2"), parse_checkpoint("model_stage"), parse_checkpoint("x")
    ((2, 6), (0, 1), None)
    """
    if name == CHECKPOINT:
        return (0, 1)
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != CHECKPOINT or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return (int(parts[2]), int(parts[1]))


@dataclass(frozen=True)
class Shard:
    """The partitions one worker holds out of ``partitions``: the models whose windows it closes."""

    partitions: int
    owned: frozenset[int]

    def __post_init__(self) -> None:
        if self.partitions < 1 or any(not 0 <= p < self.partitions for p in self.owned):
            raise ValueError(f"owned partitions {sorted(self.owned)} out of range for {self.partitions}")

    @classmethod
    def everything(cls) -> Shard:
        """One worker owns every model (a single worker, tests, the CLI)."""
        return cls(1, frozenset({0}))

    @classmethod
    def none(cls, partitions: int) -> Shard:
        """No partition held (before the first assignment, during a rebalance)."""
        return cls(partitions, frozenset())

    def owns(self, model: str) -> bool:
        return owner_partition(model, self.partitions) in self.owned

    def partition_of(self, model: str) -> int:
        return owner_partition(model, self.partitions)

    def checkpoint(self, partition: int) -> str:
        return checkpoint_name(partition, self.partitions)

    def params(self, owned: frozenset[int] | set[int] | None = None) -> dict[str, int | list[int]]:
        """Query parameters of :data:`OWNED_SQL` (``owned``: a subset of the shard, default all of it)."""
        return {"shard_n": self.partitions, "shard_owned": sorted(self.owned if owned is None else owned)}
