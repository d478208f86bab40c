"""Federated learning (Flower) around the one training loop: ``core`` (no Flower),
``coordinator`` (the server's work), ``app`` (ServerApp/ClientApp; needs the
``federated`` extra, kept in its own environment: ``make install-federated``)."""
