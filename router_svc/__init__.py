"""Router: reads pools from the chain, quotes every venue, chooses the route."""
