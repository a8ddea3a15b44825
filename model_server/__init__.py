"""Model server: one model behind the seedbench.v1.ModelService gRPC API."""
