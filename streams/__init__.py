"""The Faust application: events in, raw rows and dead letters out, the model stage's timer.

Owns: the worker's assembly (``assembly``: every stage built from typed configs
and handed to Faust), the Faust ``App`` (``app``), its topics (``topics``), the
agents (``agents/``: thin — decode, validate, call a function, emit), batching of
a stream's messages (``take``), the event schemas and decoder (``events``), the
columnar rows written to the store (``ingest``), the worker's shared state
(``service``), the alert stage (``alert_stage``), which models the worker owns
(``ownership``), its health endpoints (``health``) and its Prometheus export
(``metrics_export``, ``model_gauges``).

May import: ``detectors``, ``sinks``, ``windows``, ``alerts`` and the shell's
``watchkeeper.settings`` (the settings the worker runs with). Only this package
and the shell import Faust.
"""
