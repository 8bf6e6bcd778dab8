"""``python -m xpnet.bench``: the short table that ``xpnet bench`` prints."""

from . import _main

raise SystemExit(_main())
