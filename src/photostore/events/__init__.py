"""The event log: the spec's topics, partitions, consumer groups, lag and retention."""
