"""watchkeeper-client: log predictions and outcomes to watchkeeper without slowing the service that makes them.

Three lines in a serving process::

    from watchkeeper_client import Publisher
    wk = Publisher("kafka:9092")
    wk.prediction(model="fraud", prediction=0.93, prediction_id=req_id, features={"amount": 12.5})
    ...
    wk.outcome(model="fraud", prediction_id=req_id, outcome=1)   # later, when the truth is known

Calls never wait on the network: events go to a bounded buffer and a background
thread sends them in envelopes. When Kafka is unreachable or slow the oldest
buffered events are dropped and counted (:meth:`Publisher.stats`). An event the
service would refuse (a bad model name, NaN, too many features, a time outside
the retention, ...) is refused at the call and counted per reason; ``strict=True``
raises :class:`InvalidEvent` instead.
"""

from __future__ import annotations

from watchkeeper_client._aio import AsyncPublisher
from watchkeeper_client._contract import Contract, InvalidEvent
from watchkeeper_client._encode import encode, features_dict
from watchkeeper_client._oauth import TokenProvider
from watchkeeper_client._publisher import Publisher

__version__ = "0.1.0"
__all__ = [
    "AsyncPublisher",
    "Contract",
    "InvalidEvent",
    "Publisher",
    "TokenProvider",
    "__version__",
    "encode",
    "features_dict",
]
