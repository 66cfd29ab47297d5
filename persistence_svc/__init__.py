"""persistence_svc: the only owner of PostgreSQL, served as gRPC `orderengine.v1.Orders`."""
