"""gRPC servicers: they translate messages and call the domain; nothing else. Who is calling
and how errors become statuses is the transport's call guard (``transport/guard.py``)."""
