"""Dashboards as code: Grafana dashboards, provisioning and the static HTML report, from one set of panels.

Owns: the panels and their SQL (``panels``), the ClickHouse macros bound as
query parameters (``macros``), the Grafana JSON and provisioning files
(``grafana``, ``alerting``, ``build``), uploading them (``push``) and the
static report rendered from the same panels against the store (``report``,
``charts``).

May import: ``detectors``, ``sinks``. Not: ``streams``, ``windows``, ``alerts``, Faust.
"""
