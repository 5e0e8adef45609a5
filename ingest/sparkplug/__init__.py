"""Sparkplug B 3.0 as a host application: payload decoding (`wire`), topics, alias tables and the
mapping of metrics onto canonical readings (`host`). Both are pure; the service does the IO."""
