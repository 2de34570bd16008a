"""The Faust application: events in, raw rows and dead letters out, the model stage's timer.

Owns: the one Faust ``App`` (``app``), its topics (``topics``), the agents
(``agents/``: thin — decode, validate, call a function, emit), batching of a
stream's messages (``take``), the event schemas and decoder (``events``), the
columnar rows written to the store (``ingest``), the worker's shared state
(``service``) and its Prometheus export (``metrics_export``).

May import: ``detectors``, ``sinks``, ``windows``, ``alerts`` and the shell's
``watchkeeper.settings`` (the settings the worker runs with). Only this package
and the shell import Faust.
"""
