"""Complaints: rights-holder claims, the legal review queue and what an upheld claim does.

Not built yet (issue 4). It will use index's and compliance's public interfaces only.
"""
