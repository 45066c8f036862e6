"""clipgate kernel: settings, database, task queue, app assembly and CLI.

The domains (index, compliance, complaints, generator) use settings and the database from here;
only app.py, tasks.py and cli.py import the domains, to assemble them.
"""

__version__ = "0.1.0"
