"""Bearer-token authentication and the role/scope model of who may see and do what."""
