-- api_time(t): a timestamptz as the API writes times (RFC 3339 in UTC with Z; microseconds
-- only when there are any), the same text pydantic / msgspec produce, so that pages built as
-- JSON inside PostgreSQL (api/jsonpage.py) look exactly like pages built in Python.
-- STABLE like to_char itself, so the planner inlines it (a function call per value costs more
-- than the formatting).
CREATE OR REPLACE FUNCTION api_time(t timestamptz) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN date_trunc('second', t) = t THEN 'Z' ELSE to_char(t AT TIME ZONE 'UTC', '.US"Z"') END
$$;
