"""Torch-free pieces shared by the servers and the evaluator: lifecycle, typed
errors, micro-batching, image decoding, the answer parser, and the process
toolkit that starts and stops servers.

Imports nothing on purpose: an evaluator-only install (no server extras) imports
the light modules (`serving.processes`, `serving.images`, ...) on their own.
"""
