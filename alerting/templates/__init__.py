"""Message templates per language (zh.yaml, en.yaml); a package so wheels ship the YAML."""
