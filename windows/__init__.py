"""The model stage: close event-time windows, compute their metrics, drift and A/B rows.

Owns: finding the windows that new raw rows touched, waiting for their watermark,
joining predictions to outcomes in the store, computing window metrics
(``metrics``), drift against the version's reference (``drift``) and the
champion/challenger comparison (``ab``), and the closer that ties them together
(``closer``). Modules: ``config`` (the window key, :class:`WindowConfig`),
``queries`` (the SQL), ``metrics``, ``sample`` and ``drift``, ``sequential``
(detectors fed event by event), ``ab``, ``closer``. It is SQL over the store
plus calls into ``detectors``, configured by typed values the shell passes
down (never the settings object); it knows
nothing of Faust — the worker's timer in ``streams/agents/model_stage.py`` is a
thin call into :class:`~watchkeeper.windows.closer.WindowCloser`.

May import: ``detectors``, ``sinks``. Not: ``streams``, ``alerts``, ``dashboards``, Faust.
"""
