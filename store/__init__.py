"""Everything the product keeps in Redis besides RQ's own keys, one module per domain.

Like rq's own ``rq.defaults`` and ``Job.key_for``, every key is declared once, as a :class:`store.record.Key`
(its template, its TTL, what it holds and how long it lives), and each record kept in Redis is a dataclass
that owns its key (``KEY``, ``key_for``) and has exactly one ``encode`` and one ``decode``. The bot and the
workers read and write these keys only through this package:

- :mod:`store.record`: the shape (:class:`~store.record.Key`) and the one bytes → str helper;
- :mod:`store.deliveries`: Slack deliveries claimed, job replies marked;
- :mod:`store.classifications`: classification records and the reply snapshot of each;
- :mod:`store.answers`: users' feedback answers (the record);
- :mod:`store.feedback`: storing and reading answers, their tallies, and the feedback service;
- :mod:`store.retraining`: the training lock, its cancel request, its progress, the corrections cutoff;
- :mod:`store.serving`: what each worker serves;
- :mod:`store.newsroom`: watched channels and routes to desks;
- :mod:`store.activity`: the App Home's counters, each user's recent classifications, who opens the Home;
- :mod:`store.limits`: each member's request count in the current rate-limit window;
- :mod:`store.queues`: the Redis connection, RQ queues and RQ's timings;
- :mod:`store.keys`: the registry of every key, and the key table of ``docs/newsroom.md``
  (``python -m store`` prints it, ``python -m store --write`` rewrites the docs).
"""
