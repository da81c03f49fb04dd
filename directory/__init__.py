"""The bundled service directory, installed as the package ``carepath_content.directory``.

EXAMPLE DATA: the names and numbers in ``service_directory.yaml`` are invented (the numbers come from
the ranges Ofcom and PTS reserve for drama and fiction) and reach nobody. A deployment gives its own
file (``CAREPATH_SERVICE_DIRECTORY``); a server with ``CAREPATH_ENV=production`` refuses this one.
This file only makes the folder a package: pyproject.toml maps it in place, so a wheel carries the
directory, and :mod:`engine.settings` finds it with ``importlib.resources``.
"""
