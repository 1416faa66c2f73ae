"""Envoy xDS control plane: builders, snapshot cache and ADS server."""
