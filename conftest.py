"""Doctest collection: which modules pytest may import by their file path.

In a source checkout the packages are importable both as ``watchkeeper.streams...``
(how the code imports them) and by their folder name (how pytest names a module it
collects for doctests). Modules that register things with the Faust application at
import (the app, its topics and agents) would register twice under two names; they
have no doctests, so they are not collected.
"""

collect_ignore = ["streams/app.py", "streams/topics.py", "streams/agents", "bench"]
