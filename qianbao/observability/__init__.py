"""Logs and metrics: part of the shared kernel, so it imports no domain.

``logs`` configures structured logging (JSON by default) with a redaction layer;
``metrics`` holds every Prometheus metric, which the domains count through its small
functions; ``http`` is the request-id and access-log middleware and the ``/metrics``
answer. Domain state read at scrape time (outbox backlog, worker lag) is handed in as
plain callables by ``qianbao/monitoring.py``, which may import the domains.
"""
