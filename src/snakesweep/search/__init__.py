"""The plan: the search space, how trials are sampled and named, and which go on at a rung."""
