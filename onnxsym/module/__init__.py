"""MXNet's training front-end: Module, data iterators, metrics, initializers, optimizers, schedulers."""
