"""gRPC servicers: they translate messages and call the domain; nothing else."""
