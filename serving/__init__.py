"""Torch-free pieces shared by the servers and the evaluator."""
