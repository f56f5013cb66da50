"""A procedural toy world with a real (tiny) text-to-image teacher, built on CPU and cached: see docs/toy.md."""
