"""Atlas: Envoy xDS control plane and authoritative DNS for Thanos across many clusters."""

__version__ = "0.1.0"
