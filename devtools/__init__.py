"""Tooling that is not the product: audio synthesis, stand-in models and a service process
harness, shared by the tests, the benchmarks and the demo."""
