"""Which models this worker handles now: the shard of the model stage's pass and the live assignment.

A model belongs to partition ``CRC32(model) % partitions`` of the predictions
topic (``windows/ownership.py``). The model stage sets :attr:`Ownership.shard`
at the start of each pass; the consumer group's rebalance callbacks set
:attr:`Ownership.live` — a revoke clears it at once, so a pass in progress
stops writing the revoked models before the next owner starts (see
``streams/agents/model_stage.py``). Outside a consumer group (tests, tools),
:meth:`Ownership.everything` owns every model.

>>> from watchkeeper.windows.ownership import Shard, owner_partition
>>> o = Ownership.sharded()
>>> o.owns("fraud")  # no partitions assigned yet
False
>>> p = owner_partition("fraud", 4)
>>> o.shard, o.live = Shard(4, frozenset({p})), frozenset({p})
>>> o.owns("fraud")
True
>>> o.live = frozenset()  # revoked: false at once, before the next pass reads the assignment
>>> o.owns("fraud"), Ownership.everything().owns("fraud")
(False, True)
"""

from __future__ import annotations

from watchkeeper.windows.ownership import Shard, owner_partition


class Ownership:
    """The models of this worker (see the module doc). ``live`` None: not in a consumer group."""

    def __init__(self, shard: Shard, live: frozenset[int] | None) -> None:
        self.shard = shard
        self.live = live

    @classmethod
    def everything(cls) -> Ownership:
        """Every model, whatever the shard says (one worker outside a consumer group)."""
        return cls(Shard.everything(), None)

    @classmethod
    def sharded(cls) -> Ownership:
        """Nothing until the consumer group assigns partitions."""
        return cls(Shard.everything(), frozenset())

    def owns(self, model: str) -> bool:
        """Asked before each model is written or judged: false as soon as its partition is revoked."""
        if self.live is None:
            return True
        p = owner_partition(model, self.shard.partitions)
        return p in self.shard.owned and p in self.live
