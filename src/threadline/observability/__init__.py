"""What an operator sees of a process: Prometheus metrics (``metrics``) and the
context every log line carries (``logs``). Depends on nothing of threadline, so
every layer may report into it; nothing in ``domain`` does."""
