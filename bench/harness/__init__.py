"""The pieces of ``bench/run.py``: fill the databases, run servers, measure, report."""
