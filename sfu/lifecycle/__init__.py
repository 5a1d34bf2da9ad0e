"""A server's life: where rooms are placed across nodes, restart tickets, graceful shutdown, heap trimming."""
