"""What an operator sees of a process: its Prometheus metrics (:mod:`.metrics`) and its ``/healthz`` and
``/metrics`` endpoint (:mod:`.endpoint`). The bot and the workers import it; it needs ``prometheus_client``
(the ``bot`` extra), which is why it is not part of ``common``."""
