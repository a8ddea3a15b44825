"""Deployment of the platform: container images, Kubernetes manifests, local process mode."""
