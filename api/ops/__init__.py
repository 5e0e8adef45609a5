"""Operations endpoints: liveness, readiness (database and broker reachable), Prometheus metrics."""
