"""``python -m store``: the key table (see :mod:`store.keys`)."""

from store.keys import main

raise SystemExit(main())
