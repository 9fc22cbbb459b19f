"""cntrust scheduler: the reference scheduler the framework protects, and the composition root."""
