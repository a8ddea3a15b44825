"""The torch-free core both servers share: lifecycle, typed errors, micro-batching,
image decoding, and the process toolkit that starts and stops them.

Imports nothing on purpose: an evaluator-only install (no server extras) imports
the light modules (`serving.processes`, `serving.images`) on their own.
"""
