"""The findings domain: GET /v1/mines/{mine}/findings (every rule family's findings)."""
